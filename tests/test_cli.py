import json
from pathlib import Path

from core.cli import main


def test_generate_json_saves_to_gallery(capsys, tmp_path):
    out = tmp_path / "renders"
    code = main(
        [
            "generate",
            "--engine",
            "els",
            "--library",
            "faces",
            "--size",
            "16",
            "--count",
            "2",
            "--seed",
            "3",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["seed"] for d in data] == [3, 4]
    assert data[0]["params"]["machine"] == "els"
    assert len(list(out.glob("*.png"))) == 2
    assert main(["gallery", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {d["id"] for d in listed} == {d["id"] for d in data}


def test_generate_approximate_json(capsys):
    code = main(["generate", "--library", "faces", "--size", "16", "--approximate", "--json"])
    assert code == 0
    (data,) = json.loads(capsys.readouterr().out)
    assert data["params"]["approximate"] is True and "top_k" not in data["params"]  # bbels: the patch index
    assert data["params"]["approximate_method"] == "patch index"
    args = ["generate", "--library", "faces", "--size", "16", "--machine", "ls", "--approximate", "--top-k", "5"]
    assert main([*args, "--json"]) == 0
    (data,) = json.loads(capsys.readouterr().out)
    assert data["params"]["top_k"] == 5 and data["params"]["approximate_method"] == "candidate images"


def test_libraries_list_and_show_json(capsys):
    assert main(["libraries", "list", "--json"]) == 0
    names = [d["name"] for d in json.loads(capsys.readouterr().out)]
    assert {"photos", "faces", "digits"} <= set(names)
    assert main(["libraries", "show", "digits", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["labels"] == [str(i) for i in range(10)]


def test_libraries_add_folder_and_bad_input(capsys, tmp_path):
    from PIL import Image

    (tmp_path / "pics" / "red").mkdir(parents=True)
    Image.new("RGB", (30, 30), "red").save(tmp_path / "pics" / "red" / "a.png")
    (tmp_path / "pics" / "red" / "empty.png").write_bytes(b"")
    assert main(["libraries", "add", "mine", str(tmp_path / "pics"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report[0]["added"] == 1 and report[0]["skipped"][0][0].endswith("empty.png")


def test_errors_exit_2_with_message(capsys):
    assert main(["generate", "--engine", "nonsense", "--json"]) == 2
    captured = capsys.readouterr()
    assert "Unknown engine" in json.loads(captured.out)["error"]
    assert main(["generate", "--library", "missing", "--size", "16"]) == 2
    assert "missing" in capsys.readouterr().err


def test_generate_with_sd_engine_on_a_tiny_pipeline(capsys, tmp_path):
    from tests.engines.sd.tiny import build_tiny_sd15

    model = build_tiny_sd15(tmp_path / "tiny")
    code = main(
        [
            "generate",
            "--engine",
            "sd",
            "--model",
            str(model),
            "--prompt",
            "a red shoe",
            "--steps",
            "2",
            "--width",
            "64",
            "--height",
            "64",
            "--count",
            "2",
            "--seed",
            "9",
            "--json",
        ]
    )
    assert code == 0, capsys.readouterr().err
    data = json.loads(capsys.readouterr().out)
    assert [d["seed"] for d in data] == [9, 10]
    assert data[0]["engine"] == "sd" and data[0]["width"] == 64
    assert data[0]["params"]["prompt"] == "a red shoe"


def test_campaign_command_exports_a_folder_and_zip(capsys, tmp_path):
    assert main(["campaign", "--list-templates", "--json"]) == 0
    ids = [t["id"] for t in json.loads(capsys.readouterr().out)]
    assert "social-post-set" in ids
    out = tmp_path / "campaign"
    code = main(
        [
            "campaign",
            "marketing-variations",
            "--field",
            "product=oat milk",
            "--library",
            "faces",
            "--size",
            "16",
            "--steps",
            "4",
            "--seeds",
            "1",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0, capsys.readouterr().err
    data = json.loads(capsys.readouterr().out)
    assert data["zip"] and (out / "manifest.csv").exists() and (out / "contact-sheet.html").exists()
    assert len(list((out / "images").glob("*.png"))) >= 2
    assert any("text" in n.lower() for n in data["notices"])  # offline engine says it has no text model


def test_analyze_command_flags_a_near_copy_and_writes_the_source_map(capsys, tmp_path):
    from PIL import Image
    from skimage import data as skdata

    photos = tmp_path / "refs"
    photos.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(skdata, name)()).convert("RGB").resize((96, 96)).save(photos / f"{name}.png")
    assert main(["libraries", "add", "refs", str(photos), "--json"]) == 0
    capsys.readouterr()
    query = tmp_path / "query.jpg"
    Image.open(photos / "coffee.png").resize((120, 120)).save(query, quality=80)
    assert main(["analyze", str(query), "--library", "refs", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["near_copy"]["is_copy"] is True
    assert data["copy_risk"] == "high"
    assert Path(data["source_map_png"]).exists()
    assert main(["analyze", str(query), "--library", "refs", "--space", "latent"]) == 2
    assert "--model" in capsys.readouterr().err


def test_generate_with_the_trained_demo_model(capsys):
    assert main(["generate", "--engine", "trained", "--count", "2", "--seed", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["engine"] for d in data] == ["trained", "trained"] and data[0]["width"] == 16
