"""Command-line runs against SQLite and PostgreSQL (issue 13, item 6: 64-bit seeds end to end)."""

import json

from core.cli import main


def test_the_largest_seeds_generate_save_and_list(capsys):
    top = 2**63 - 1
    args = ["generate", "--library", "digits", "--size", "8", "--steps", "2", "--count", "2", "--json"]
    assert main([*args, "--seed", str(top - 1)]) == 0, capsys.readouterr().err
    made = json.loads(capsys.readouterr().out)
    assert [d["seed"] for d in made] == [top - 1, top]
    assert len({d["batch_id"] for d in made}) == 1
    assert main(["gallery", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(d["seed"] for d in listed) == [top - 1, top]
    assert not any(d["file_missing"] for d in listed)
    # one past the top is refused with a message, and nothing more is saved
    assert main([*args, "--seed", str(top)]) == 2
    assert "seed" in json.loads(capsys.readouterr().out)["error"]
    assert main(["gallery", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
