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


def test_flux_and_chroma_bases_start_from_their_family_packages_settings(tmp_path):
    """FLUX.1 [dev] 20 steps at CFG 1 (its distilled guidance stays 3.5), schnell 4 steps, Chroma real CFG 4: the
    presets each family package names for the variant the weights tell (SAMPLE_PRESETS), at 1024, a multiple of 16.
    The form's variant counts only where the weights cannot tell and it is one of the family's own."""
    from models.families.flux.tiny import build_tiny
    from models.tiny import save_tiny

    dev = save_tiny("flux", tmp_path / "dev").folder
    size = {"width": 1024, "height": 1024, "sampler": "euler"}
    assert base_sampling(str(dev)) == size | {"steps": 20, "cfg": 1.0}
    assert base_sampling(str(dev), "schnell") == size | {"steps": 20, "cfg": 1.0}  # the weights say dev
    assert base_sampling(str(dev), "turbo") == size | {"steps": 20, "cfg": 1.0}   # another family's variant
    build_tiny(0, "schnell").save_pretrained(tmp_path / "schnell")
    assert base_sampling(str(tmp_path / "schnell"), "dev") == size | {"steps": 4, "cfg": 1.0}
    chroma = save_tiny("chroma", tmp_path / "chroma").folder
    assert base_sampling(str(chroma), "dev") == size | {"steps": 30, "cfg": 4.0}
