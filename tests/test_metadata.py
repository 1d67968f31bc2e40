from core.metadata import format_parameters, parse_parameters, png_text


def test_round_trip_of_our_parameters():
    params = {
        "prompt": "red sneaker, studio light",
        "negative_prompt": "blurry",
        "steps": 20,
        "seed": 42,
        "width": 512,
        "height": 768,
        "sampler": "DDIM",
        "model": "sd15, v1",
    }
    parsed = parse_parameters(format_parameters(params))
    assert parsed["prompt"] == "red sneaker, studio light"
    assert parsed["negative_prompt"] == "blurry"
    assert parsed["steps"] == "20"
    assert parsed["seed"] == "42"
    assert parsed["size"] == "512x768"
    assert parsed["model"] == "sd15, v1"


def test_parses_automatic1111_string():
    text = (
        "a photo of a cat, masterpiece\nwearing a hat\n"
        "Negative prompt: lowres, bad anatomy\n"
        "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 512x512, "
        'Model hash: abc123, Model: v1-5, Lora hashes: "x: 1, y: 2", Version: v1.7.0'
    )
    parsed = parse_parameters(text)
    assert parsed["prompt"] == "a photo of a cat, masterpiece\nwearing a hat"
    assert parsed["negative_prompt"] == "lowres, bad anatomy"
    assert parsed["sampler"] == "DPM++ 2M Karras"
    assert parsed["cfg_scale"] == "7"
    assert parsed["lora_hashes"] == "x: 1, y: 2"
    assert parsed["version"] == "v1.7.0"


def test_png_text_has_both_chunks():
    chunks = png_text({"seed": 1, "steps": 2})
    assert set(chunks) == {"parameters", "mosaic"}
