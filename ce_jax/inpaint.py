"""Fill your own images with your own masks.

  python -m ce_jax.inpaint --workdir=runs/freeform \
      --image=photo.jpg --mask=mask.png --output=filled.png [--grid]

`--workdir` is a training workdir (its `config.json` says what it trained;
`--checkpoint` picks the checkpoint) or an export (`python -m ce_jax.export`);
only the generator's inference weights are restored.

`--image` is a file or a folder; `--mask` is a file (white = fill, black =
keep; any size with the image's aspect ratio), a folder of masks named like
the images (`photo.jpg` ↔ `photo.png`), or `center` / `random_blocks` to
generate one; `--output` is a .png file or a folder. Only the pixels under the
mask change; every other pixel of the output is the original's, bit for bit
(hence PNG). The model runs at its own resolution: with `--fill=crop` (the
default) each hole is filled from a square of the photo around it,
`--context_factor` times its size and at least the model's input (resized to
that input, or as it is for GLCIC and DeepFill v2), and only a hole too large
for that is filled from the whole photo resized to the model's input, the one
way with `--fill=whole` (`completion.plan_fills`; `--verbosity=1` prints the
way each hole took). A center-output model predicts only the central square
of its input; so a hole filled from the whole photo must lie inside that
square of the photo.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags
from PIL import Image, ImageOps

from ce_jax import cli, completion, masks, models, trained, visualize
from ce_jax.errors import UserError

GENERATED = ('center', 'random_blocks', 'random_block')


# ----------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------


def _open(path: str, flag: str) -> Image.Image:
  try:
    with Image.open(path) as im:
      im.load()
      return ImageOps.exif_transpose(im)
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise UserError(f"{flag} file '{path}' cannot be read as an image ({e}).") from e


def read_image(path: str) -> np.ndarray:
  """`[H, W, 3]` uint8 RGB (grey and alpha images become RGB)."""
  return np.asarray(_open(path, '--image').convert('RGB'))


def read_mask(path: str, image_size: tuple[int, int]) -> np.ndarray:
  """The hole `[H, W]` bool of a mask file: white (≥ 128) = fill; transparent = keep.

  A mask of another size with the image's aspect ratio (within one mask pixel)
  is resized to it (nearest neighbour).
  """
  rgba = np.asarray(_open(path, '--mask').convert('RGBA'), np.float32)
  grey = rgba[..., :3].mean(-1) * rgba[..., 3] / 255.0
  h, w = image_size
  mh, mw = grey.shape
  if (mh, mw) != (h, w):
    if abs(mh - mw * h / w) > 1:
      raise UserError(f"--mask file '{path}' is {mw}×{mh} but its image is {w}×{h} "
                      '(width×height): the aspect ratios differ, so it cannot be resized to fit.')
    grey = np.asarray(Image.fromarray(grey, 'F').resize((w, h), Image.NEAREST))
  hole = grey >= 128
  if not hole.any():
    raise UserError(f"--mask file '{path}' has no white pixels (white = fill, black = keep).")
  if hole.all():
    raise UserError(f"--mask file '{path}' is white everywhere: nothing is left to fill the "
                    'image from (white = fill, black = keep).')
  return hole


def list_folder(folder: str, flag: str) -> list[str]:
  """Files directly in `folder` whose extension PIL opens, sorted."""
  readable = tuple(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)
  files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                 if f.lower().endswith(readable))
  if not files:
    raise UserError(f"{flag} folder '{folder}' holds no image files (.jpg, .png, .webp, ... "
                    'any that PIL opens).')
  return files


def _stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def plan(image: str, mask: str, output: str) -> list[tuple[str, str, str]]:
  """(image file, mask file or generated kind, output .png) for each image."""
  if not os.path.exists(image):
    raise UserError(f"--image='{image}': no such file or folder.")
  if mask not in GENERATED and not os.path.exists(mask):
    raise UserError(f"--mask='{mask}': no such file or folder (or use --mask=center or "
                    '--mask=random_blocks).')
  images = list_folder(image, '--image') if os.path.isdir(image) else [image]
  to_folder = os.path.isdir(image) or os.path.isdir(output) or output.endswith(os.sep)
  if not to_folder and not output.lower().endswith('.png'):
    raise UserError(f"--output='{output}': expected a .png file (a lossy format would alter "
                    'the known pixels) or a folder.')
  if os.path.isdir(image) and output.lower().endswith('.png'):
    raise UserError(f"--output='{output}' is a file but --image is a folder: expected a folder.")
  masks_by_stem = {}
  if os.path.isdir(mask):
    masks_by_stem = {_stem(p): p for p in list_folder(mask, '--mask')}
  out = []
  for path in images:
    if os.path.isdir(mask):
      if _stem(path) not in masks_by_stem:
        raise UserError(f"--mask folder '{mask}' has no mask named {_stem(path)}.* for "
                        f"image '{path}'.")
      mask_for = masks_by_stem[_stem(path)]
    else:
      mask_for = mask
    target = os.path.join(output, _stem(path) + '.png') if to_folder else output
    if os.path.abspath(target) == os.path.abspath(path):
      raise UserError(f"--output would overwrite the input '{path}'.")
    out.append((path, mask_for, target))
  return out


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------


class Inpainter:
  """A trained generator that fills `[H, W, 3]` uint8 images at any size.

  `variables` are G's `{'params', 'batch_stats'}` (`trained.load(...).variables`,
  or `completion.generator_variables` of a training state). `fill`,
  `context_factor` and `min_side`: `completion.plan_fills`'.
  """

  def __init__(self, config: ml_collections.ConfigDict, variables: completion.Variables,
               fill: str = 'crop', context_factor: float = completion.CONTEXT_FACTOR,
               min_side: int | None = None):
    self.config, self.variables = config, variables
    self.size = config.data.image_size
    self.fill, self.context_factor, self.min_side = fill, context_factor, min_side
    completion.check_fill(fill, context_factor)
    gen, _ = models.create_models(config)
    self._predict = jax.jit(
        lambda v, x, m: completion.complete(gen, v, x, m, config=config)[0])

  def plan(self, hole: np.ndarray) -> completion.FillPlan:
    """Where the generator runs to fill `hole` `[H, W]` bool (`completion.plan_fills`)."""
    return completion.plan_fills(self.config, hole, fill=self.fill,
                                 context_factor=self.context_factor, min_side=self.min_side)

  def whole_hole(self, plan: completion.FillPlan) -> np.ndarray | None:
    """The holes `plan` fills from the whole photo, at the model's size `[S, S]` bool; None
    when it fills none that way."""
    whole = [c for c in plan.crops if c.path == 'whole']
    if not whole:
      return None
    return self.to_model(np.isin(plan.labels, whole[0].holes))

  def center_hole(self, image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The config's center hole at the model's size `[S, S]` and at `image_size` (bool)."""
    c = self.config.mask
    small = np.asarray(masks.center(1, (self.size, self.size), hole_size=c.hole_size,
                                    overlap=c.overlap, overlap_weight=1.0).mask[0, ..., 0]) > 0
    return small, self.to_image(small, image_size)

  def to_model(self, hole: np.ndarray) -> np.ndarray:
    """`[H, W]` bool → `[S, S]` bool: a model pixel is missing if any pixel under it is."""
    return completion.resize_hole(hole, (self.size, self.size))

  def to_image(self, small: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """`[S, S]` bool → `[H, W]` bool, nearest neighbour."""
    h, w = image_size
    return np.asarray(Image.fromarray(small).resize((w, h), Image.NEAREST))

  def center_box(self, image_size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1): rows y0:y1 and columns x0:x1 of an `image_size` image that a
    center-output model fills; None for a full-output model, which fills anything."""
    if self.config.model.output != 'center':
      return None
    offset, side = completion.center_box(self.config)
    h, w = image_size
    return (offset * h // self.size, (offset + side) * h // self.size,
            offset * w // self.size, (offset + side) * w // self.size)

  def outside_center(self, small: np.ndarray) -> bool:
    """Whether the hole `[S, S]` bool reaches outside what a center-output model fills."""
    if self.config.model.output != 'center':
      return False
    offset, side = completion.center_box(self.config)
    inside = np.zeros_like(small)
    inside[offset:offset + side, offset:offset + side] = True
    return bool((small & ~inside).any())

  def check_center(self, small: np.ndarray, image_size: tuple[int, int], name: str) -> None:
    if not self.outside_center(small):
      return
    y0, y1, x0, x1 = self.center_box(image_size)
    _, side = completion.center_box(self.config)
    raise UserError(
        f"--mask {name}: the hole reaches outside rows {y0}–{y1}, columns {x0}–{x1} of the "
        f'image, the central {side}×{side} of {self.size}×{self.size} that this '
        "center-output model predicts (model.output='center'): use --mask=center or a "
        "full-output model (model.output='full', e.g. configs/freeform.py).")

  def __call__(self, image: np.ndarray, hole: np.ndarray, small: np.ndarray | None = None,
               plan: completion.FillPlan | None = None) -> np.ndarray:
    """Fills `hole` `[H, W]` bool of `image` `[H, W, 3]` uint8 → `[H, W, 3]` uint8.

    `plan`: `self.plan(hole)` (computed when None). `small`: the model's mask
    `[S, S]` bool where the whole photo is filled (default: the hole resized).
    Pixels outside `hole` are returned unchanged.
    """
    plan = self.plan(hole) if plan is None else plan
    predict = lambda x, m: jax.device_get(  # noqa: E731
        self._predict(self.variables, jnp.asarray(x), jnp.asarray(m)))
    return completion.fill_photo(predict, self.config, image, hole, plan, small)


def make_hole(inpainter: Inpainter, spec: str, image_size: tuple[int, int],
              key: jax.Array) -> tuple[np.ndarray, np.ndarray | None]:
  """(hole `[H, W]` bool, hole at the model's size or None) for a mask file or kind."""
  if spec == 'center':
    small, hole = inpainter.center_hole(image_size)
    return hole, small
  if spec in GENERATED:
    c = inpainter.config.mask
    m = masks.random_blocks(key, 1, image_size, num_blocks=c.num_blocks,
                            max_coverage=c.max_coverage, overlap=0, overlap_weight=0.0)
    return np.asarray(m.mask[0, ..., 0]) > 0, None
  return read_mask(spec, image_size), None


def run(config: ml_collections.ConfigDict | None, workdir: str | None, checkpoint: str,
        image: str, mask: str, output: str, grid: bool = False, seed: int = 0,
        fill: str = 'crop', context_factor: float = completion.CONTEXT_FACTOR) -> list[str]:
  """Fills every image that `--image` names; returns the written files.

  `config` None: the run's (or export's) saved config. `fill`, `context_factor`:
  `completion.plan_fills`'.
  """
  jobs = plan(image, mask, output)
  generator = trained.load(config, workdir, checkpoint)
  config = generator.config
  inpainter = Inpainter(config, generator.variables, fill, context_factor)
  written = []
  for i, (image_path, spec, target) in enumerate(jobs):
    original = read_image(image_path)
    size = original.shape[:2]
    hole, small = make_hole(inpainter, spec, size, jax.random.fold_in(jax.random.key(seed), i))
    name = spec if spec in GENERATED else f"file '{spec}'"
    fills = inpainter.plan(hole)
    whole = inpainter.whole_hole(fills)
    if whole is not None:
      inpainter.check_center(whole if small is None else small, size, name)
    result = inpainter(original, hole, small, fills)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    visualize.save_png(result, target)
    written.append(target)
    if grid:
      masked = np.where(hole[..., None], np.round(config.data.mean_pixel).astype(np.uint8),
                        original)
      signed = [a[None].astype(np.float32) / 127.5 - 1.0 for a in (masked, result, original)]
      grid_path = os.path.splitext(target)[0] + '_grid.png'
      visualize.save_png(visualize.grid(*signed), grid_path)
      written.append(grid_path)
  return written


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Command-line flags (defined only when run as a program)."""
  cli.define_checkpoint_flags()
  flags.DEFINE_string('image', None, 'An image file or a folder of images.')
  flags.DEFINE_string('mask', None, 'A mask file (white = fill), a folder of masks named like '
                      'the images, center, or random_blocks.')
  flags.DEFINE_string('output', None, 'A .png file, or a folder (for a folder of images).')
  flags.DEFINE_bool('grid', False, 'Also write <output>_grid.png: masked | completion | original.')
  flags.DEFINE_integer('seed', 0, 'Seed of generated random_blocks masks.')
  define_fill_flags()
  flags.mark_flags_as_required(['image', 'mask', 'output'])


def define_fill_flags() -> None:
  """`--fill` and `--context_factor` (also the demo's)."""
  flags.DEFINE_enum('fill', 'crop', completion.FILLS,
                    'crop: each hole from a square of the photo around it (the whole photo '
                    'for a hole too large for that); whole: every hole from the whole photo '
                    "resized to the model's input.")
  flags.DEFINE_float('context_factor', completion.CONTEXT_FACTOR,
                     "--fill=crop: the square's side over the hole's longer side (at least the "
                     "model's input when the photo allows).")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  config = cli.load_config(required=False)
  written = cli.call(lambda: run(config, FLAGS.workdir, FLAGS.checkpoint, FLAGS.image,
                                 FLAGS.mask, FLAGS.output, FLAGS.grid, FLAGS.seed, FLAGS.fill,
                                 FLAGS.context_factor))
  for path in written:
    print(path)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
