"""Reading back what training wrote to TensorBoard."""

import glob
import os

import tensorflow as tf


def scalars(workdir: str) -> dict[str, dict[int, float]]:
  """{tag: {step: value}} from the TensorBoard event files of `workdir`."""
  out = {}
  for path in glob.glob(os.path.join(workdir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == 'scalars':
          out.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
  return out
