"""The XYZ grid's "LoRA files" source starts from the base's own settings: its native size and its family's
steps, CFG and sampler (models.grid.plan.base_sampling), not the schema's 512 px / 20 steps for every base."""

from __future__ import annotations

from models.grid.plan import base_sampling


def test_base_sampling_is_the_bases_native_size_and_its_familys_settings(tmp_path):
    from models.tiny import save_tiny

    sd15 = save_tiny("sd15", tmp_path / "sd15")
    assert base_sampling(str(sd15.single_file)) == {"width": 64, "height": 64}  # SD: the schema's 20 steps, CFG 7
    z = save_tiny("zimage", tmp_path / "zimage").folder
    assert base_sampling(str(z)) == {"width": 1024, "height": 1024, "steps": 8, "cfg": 1.0, "sampler": "euler"}
    assert base_sampling(str(z), "deturbo") | {"width": 0} == {"width": 0, "height": 1024, "steps": 25, "cfg": 3.0,
                                                               "sampler": "euler"}
    assert base_sampling("Tongyi-MAI/Z-Image-Turbo") == {} and base_sampling("") == {}  # nothing downloaded
