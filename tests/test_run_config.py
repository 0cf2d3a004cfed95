"""The workdir's saved config: round trip, and what a resumed run may change."""

import json
import logging
import os
import subprocess
import sys

import pytest

from ce_jax import run_config
from ce_jax.errors import UserError
from configs import default, freeform, photos
from configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('module', [default, freeform, test_config])
def test_saved_config_round_trips_with_its_types(module, tmp_path):
  config = module.get_config()
  config.train.num_steps = 7
  run_config.save(config, tmp_path)
  loaded = run_config.load(tmp_path)
  assert run_config.differences(config, loaded) == {}
  assert run_config.flat(loaded) == run_config.flat(config)
  assert isinstance(loaded.data.mean_pixel, tuple) and isinstance(loaded.train.num_steps, int)
  assert loaded.to_dict() == config.to_dict()


def test_no_saved_config_is_none_and_a_broken_one_names_the_file(tmp_path):
  assert run_config.load(tmp_path) is None
  (tmp_path / 'config.json').write_text('{"model": ')
  with pytest.raises(UserError, match=f'{tmp_path / "config.json"} is not a readable config'):
    run_config.load(tmp_path)


def test_a_config_saved_before_a_field_existed_gets_its_old_behaviour(tmp_path):
  config = default.get_config()
  run_config.save(config, tmp_path)
  saved = json.loads((tmp_path / 'config.json').read_text())
  for field in run_config.ADDED:
    section, name = field.split('.')
    del saved[section][name]
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  loaded = run_config.load(tmp_path)
  # The run saved before: the current default with the added fields at their old values.
  old = default.get_config()
  for field, value in run_config.ADDED.items():
    section, name = field.split('.')
    assert loaded[section][name] == value
    old[section][name] = value
  assert run_config.differences(old, loaded) == {}
  run_config.check_resume(str(tmp_path), old, resuming=True)  # no refusal


def test_resume_refuses_a_change_to_the_model_or_its_data(tmp_path):
  run_config.check_resume(str(tmp_path), test_config.get_config(), resuming=False)
  changed = test_config.get_config()
  changed.model.gen_features = 16
  changed.mask.hole_size = 8
  with pytest.raises(UserError, match=r"mask.hole_size 16 → 8, model.gen_features 8 → 16\. "
                     'These fields change the model or its data'):
    run_config.check_resume(str(tmp_path), changed, resuming=True)
  assert run_config.load(tmp_path).model.gen_features == 8  # the saved config is kept


def test_resume_logs_allowed_changes_and_saves_them(tmp_path, caplog):
  run_config.check_resume(str(tmp_path), test_config.get_config(), resuming=False)
  longer = test_config.get_config()
  longer.train.num_steps = 40
  longer.optim.d_lr = 1e-4
  with caplog.at_level(logging.INFO):
    run_config.check_resume(str(tmp_path), longer, resuming=True)
  assert ('Resuming with changed config fields: optim.d_lr 0.0002 → 0.0001, '
          'train.num_steps 4 → 40.') in caplog.text
  assert run_config.load(tmp_path).train.num_steps == 40


def test_a_program_says_which_config_it_uses(tmp_path, caplog):
  run_config.save(test_config.get_config(), tmp_path)
  assert run_config.differences(run_config.for_run(tmp_path, None), test_config.get_config()) == {}
  other = test_config.get_config()
  other.train.batch_size = 16
  with caplog.at_level(logging.WARNING):
    assert run_config.for_run(tmp_path, other) is other
  assert f'--config differs from {tmp_path / "config.json"} in train.batch_size 8 → 16; using ' \
         '--config.' in caplog.text


def test_field_groups_add_only_their_fields():
  plain = run_config.flat(default.get_config())
  both = run_config.flat(default.get_config('adversarial,folder'))
  added = set(both) - set(plain)
  assert {'loss.gan', 'optim.d_lr', 'model.disc_features', 'data.folder'} <= added
  assert not any(k.startswith(('mask.freeform', 'data.celeba')) for k in added)
  assert all(both[k] == v for k, v in plain.items())  # Groups change no default field.


def test_config_arguments_and_missing_groups_are_one_line_each(tmp_path):
  def run(*args):
    return subprocess.run([sys.executable, '-m', 'ce_jax.main', f'--workdir={tmp_path}', *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)

  bad_group = run('--config=configs/default.py:bogus')
  assert bad_group.returncode == 2
  lines = bad_group.stderr.strip().splitlines()
  assert lines[-1].startswith('error: ') and 'Traceback' not in bad_group.stderr, lines
  assert "configs/default.py:bogus: expected field groups among ('adversarial'" in lines[-1]
  no_folder = run('--config=configs/default.py', '--config.data.source=folder')
  assert no_folder.returncode == 2
  assert no_folder.stderr.strip().splitlines()[-1] == (
      "error: data.source='folder' needs data.folder, data.eval_folder, data.eval_fraction, "
      'which this config lacks: use --config=configs/default.py:folder (or add them to your '
      'config file).')


def test_a_corpus_run_saved_before_add_embedded_trained_on_the_corpus_alone(tmp_path):
  config = photos.get_config()
  config.data.add_embedded = False
  run_config.save(config, tmp_path)
  saved = json.loads((tmp_path / 'config.json').read_text())
  del saved['data']['add_embedded']
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  assert run_config.load(tmp_path).data.add_embedded is False
  run_config.check_resume(str(tmp_path), config, resuming=True)  # no refusal
  # Other sources never had the field and do not gain it.
  run_config.save(default.get_config(), tmp_path)
  assert 'add_embedded' not in run_config.load(tmp_path).data
