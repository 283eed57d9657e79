"""The PNG recipe's keys for zero terminal SNR and CFG rescale are the ones the programs that read them write.

- WebUI 1.8+ (AUTOMATIC1111, ``modules/shared_options.py``): option ``sd_noise_schedule`` ("Default" / "Zero Terminal
  SNR", ``infotext="Noise Schedule"``); ``modules/sd_models.py`` ``apply_alpha_schedule_override`` writes
  ``p.extra_generation_params['Noise Schedule'] = opts.sd_noise_schedule``.
- WebUI has no CFG rescale of its own; its CFG Rescale extension (``scripts/CFGRescale.py``) writes and reads
  ``CFG Rescale``; Forge's built-in RescaleCFG script writes and reads ``Rescale CFG``.
"""

from __future__ import annotations


def test_zero_terminal_snr_and_cfg_rescale_keys():
    from core import config as cfgmod
    from models import generate, recipe

    s = cfgmod.with_values(cfgmod.default_config(), {"sampling.cfg_rescale": 0.7}).sampling
    text = generate.recipe_text(recipe.build(s, prompt="a cat", zero_terminal_snr=True).recipe)
    params = generate.parse_parameters(text)["params"]
    assert params["Noise Schedule"] == "Zero Terminal SNR"
    assert params["CFG Rescale"] == params["Rescale CFG"] == "0.7"
    plain = generate.parse_parameters(generate.recipe_text(recipe.build(s, prompt="a cat").recipe))["params"]
    assert "Noise Schedule" not in plain
    off = cfgmod.default_config().sampling
    none = generate.parse_parameters(generate.recipe_text(recipe.build(off, prompt="a cat").recipe))["params"]
    assert not {"CFG Rescale", "Rescale CFG"} & set(none)
