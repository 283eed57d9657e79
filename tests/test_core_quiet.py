"""Third-party notices a user cannot act on stay out of the console; errors still show."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_importing_the_model_stack_prints_no_notices():
    code = ("import logging, models, taggers\n"
            "from diffusers import StableDiffusionPipeline\n"
            "from transformers import SiglipImageProcessor\n"
            "logging.getLogger('bitsandbytes.backends.cpu.ops').warning('kernels-community notice')\n"
            "logging.getLogger('transformers.utils.import_utils').error('an error still shows')\n"
            "m = logging.getLogger('diffusers.models.modeling_utils')\n"
            "m.warning('There are modules in UNet2DConditionModel that should be kept in float32: [].')\n"
            "m.warning('There are modules in VAE that should be kept in float32: [\\'norm\\'].')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "kernels-community" not in out.stderr and "requires torchvision" not in out.stderr
    assert "an error still shows" in out.stderr
    assert "float32: []" not in out.stderr and "float32: ['norm']" in out.stderr  # only the empty notice goes
