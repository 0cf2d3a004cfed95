"""The environment of a test subprocess that simulates another number of CPU devices."""

import os

DEVICE_COUNT_FLAG = '--xla_force_host_platform_device_count'


def with_devices(n: int) -> dict[str, str]:
  """`os.environ` with the run's XLA flags (conftest's), but `n` simulated devices."""
  flags = [f for f in os.environ.get('XLA_FLAGS', '').split()
           if not f.startswith(DEVICE_COUNT_FLAG)]
  return dict(os.environ, XLA_FLAGS=' '.join([*flags, f'{DEVICE_COUNT_FLAG}={n}']))
