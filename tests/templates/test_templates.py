"""Templates as data: built-ins validate and render; broken files name the file and the field."""

from __future__ import annotations

import math
import os

import pytest
import yaml

from core.errors import BadInputError
from core.templates import (
    CHANNELS,
    FAMILY_BASE,
    BrandKit,
    Template,
    TemplateError,
    TemplateLibrary,
    load_brand_kit,
    parse_template,
    save_brand_kit,
    size_for,
    user_templates_dir,
)

BUILTINS = [
    "ab-ad-pair",
    "logo-concepts",
    "marketing-variations",
    "mood-board",
    "product-hero",
    "seasonal-campaign",
    "social-post-set",
]


def _sample_values(template: Template) -> dict[str, object]:
    values: dict[str, object] = {}
    for f in template.fields:
        if f.type == "choice":
            values[f.key] = f.choices[-1]
        elif f.type == "colors":
            values[f.key] = "#1B2A4A, coral"
        elif f.type == "color":
            values[f.key] = "navy"
        elif f.type == "number":
            values[f.key] = 3
        else:
            values[f.key] = f"my {f.key}"
    return values


def _minimal(**changes):
    doc = {
        "name": "Test",
        "purpose": "A test template.",
        "fields": [{"key": "product", "label": "Product", "type": "text", "required": True}],
        "prompt": "{product}, {style}",
        "channels": ["square"],
        "variations": {"styles": [{"name": "Plain", "prompt": "plain"}], "seeds": 1, "guidance": [7]},
    }
    doc.update(changes)
    return doc


def test_builtin_templates_are_all_there():
    assert TemplateLibrary().builtin_ids() == BUILTINS


@pytest.mark.parametrize("template_id", BUILTINS)
def test_builtin_template_validates_and_renders(template_id):
    template = TemplateLibrary().get(template_id)
    assert template.builtin and template.name and template.purpose and "\n" not in template.purpose
    values = template.resolve_fields(_sample_values(template))
    for style in template.variations.styles:
        for channel in template.channels:
            prompt, negative = template.render(values, style, channel)
            assert prompt and "{" not in prompt and "}" not in prompt and "[[" not in prompt
            assert "{" not in negative and "[[" not in negative
            required = [f for f in template.fields if f.required]
            assert all(str(values[f.key]) in prompt for f in required if f.type == "text")
    # saving a copy and reading it back gives the same template
    copy = Template.from_dict(yaml.safe_load(yaml.safe_dump(template.to_dict())), "copy")
    assert copy.to_dict() == template.to_dict()


def test_required_fields_only_render_without_leftovers():
    template = TemplateLibrary().get("marketing-variations")
    values = template.resolve_fields({"product": "oat milk"})
    prompt, _ = template.render(values, template.variations.styles[0], "square")
    assert prompt.startswith("oat milk, the product on a clean table")
    assert "appealing to" not in prompt and "colours" not in prompt and ",," not in prompt


def test_field_values_are_checked_with_the_field_named():
    template = TemplateLibrary().get("marketing-variations")
    with pytest.raises(BadInputError, match="Product or service"):
        template.resolve_fields({})
    with pytest.raises(BadInputError, match="Tone.*must be one of"):
        template.resolve_fields({"product": "x", "tone": "grumpy"})
    with pytest.raises(BadInputError, match="Brand colours.*not a colour"):
        template.resolve_fields({"product": "x", "colours": "#12"})
    with pytest.raises(BadInputError, match="no field 'prodcut'"):
        template.resolve_fields({"prodcut": "x"})
    values = template.resolve_fields({"product": "x", "colours": "#1b2a4a,Coral"})
    assert values["colours"] == ["#1B2A4A", "coral"] and values["tone"] == "warm"
    prompt, _ = template.render(values, template.variations.styles[0], "square")
    assert "colours navy, coral" in prompt


def test_placeholder_values_are_not_reinterpreted():
    template = Template.from_dict(_minimal(), "t")
    prompt, _ = template.render(template.resolve_fields({"product": "{style} {{x}} [[y]]"}), None, "square")
    assert prompt == "{style} {{x}} [[y]], plain"


@pytest.mark.parametrize(
    ("changes", "field_path", "problem"),
    [
        ({"fields": [{"key": "product", "type": "txt"}]}, "fields[0].type", "must be one of"),
        ({"prompt": "{product} for {audience}"}, "prompt", "{audience}"),
        ({"prompt": "{product.__class__}"}, "prompt", "plain names"),
        ({"channels": ["square", "billboard"]}, "channels[1]", "billboard"),
        ({"name": None}, "name", "missing"),
        ({"variations": {"guidance": [7, 99]}}, "variations.guidance[1]", "between"),
        ({"variations": {"seeds": 0}}, "variations.seeds", "between 1 and 16"),
        ({"variations": {"styles": [{"name": "A", "promt": "x"}]}}, "variations.styles[0].promt", "not a known"),
        ({"engine_hints": {"local_score": {"presets": ["blurry"]}}}, "engine_hints.local_score.presets[0]", "blurry"),
        ({"fields": [{"key": "product"}, {"key": "product"}]}, "fields[1].key", "used twice"),
        ({"fields": [{"key": "tone", "type": "choice"}], "prompt": "{tone}"}, "fields[0].choices", "needs a list"),
        ({"colour": "red"}, "colour", "not a known setting"),
    ],
)
def test_malformed_template_names_file_and_field(tmp_path, changes, field_path, problem):
    path = tmp_path / "broken-one.yaml"
    path.write_text(yaml.safe_dump(_minimal(**changes)))
    library = TemplateLibrary(builtin_dir=tmp_path / "none", user_dir=tmp_path)
    with pytest.raises(TemplateError) as info:
        library.get("broken-one")
    err = info.value
    assert err.field == field_path
    assert "broken-one.yaml" in str(err) and f"'{field_path}'" in str(err) and problem in str(err)


def test_yaml_syntax_error_names_file_and_line():
    with pytest.raises(TemplateError, match=r"mine\.yaml.*not valid YAML \(line \d+"):
        parse_template("name: a\nprompt: [unclosed\n", "mine", file="mine.yaml")
    with pytest.raises(TemplateError, match="mine.yaml"):
        parse_template("!!python/object/apply:os.system ['echo hi']", "mine", file="mine.yaml")


def test_duplicate_edit_save_and_read_back():
    library = TemplateLibrary()
    copy = library.duplicate("social-post-set", "my-posts", name="My posts")
    assert not copy.builtin
    copy.channels = ["square", "story"]
    saved = library.save(copy)
    assert (user_templates_dir() / "my-posts.yaml").is_file()
    again = TemplateLibrary().get("my-posts")
    assert again.name == "My posts" and again.channels == ["square", "story"] and not again.builtin
    assert "my-posts" in [t.id for t in TemplateLibrary().list()] and saved.id == "my-posts"
    library.delete("my-posts")
    assert "my-posts" not in library.ids()


def test_builtins_are_read_only_and_saves_are_validated():
    library = TemplateLibrary()
    template = library.get("mood-board")
    with pytest.raises(BadInputError, match="built-in"):
        library.save(template)
    with pytest.raises(BadInputError, match="built-in"):
        library.delete("mood-board")
    with pytest.raises(TemplateError) as info:
        library.save(_minimal(prompt="{nope}"), "bad-one")
    assert info.value.field == "prompt" and "bad-one.yaml" in str(info.value)
    assert not (user_templates_dir() / "bad-one.yaml").exists()
    with pytest.raises(TemplateError, match="bad-two.yaml.*fields\\[0\\].type"):
        library.save_text(yaml.safe_dump(_minimal(fields=[{"key": "product", "type": 3}])), "bad-two")


def test_broken_user_file_is_skipped_in_the_list_and_reported():
    (user_templates_dir() / "hand-edited.yaml").write_text("name: x\npurpose: y\nprompt: '{oops}'\n")
    library = TemplateLibrary()
    assert "hand-edited" not in [t.id for t in library.list()]
    (problem,) = library.problems()
    assert "hand-edited.yaml" in problem and "'prompt'" in problem


@pytest.mark.parametrize("family", sorted(FAMILY_BASE))
@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_channel_sizes_fit_the_model_family(family, channel):
    width, height = size_for(channel, family)
    base = FAMILY_BASE[family]
    assert width % 64 == 0 and height % 64 == 0
    assert min(width, height) >= 0.6 * base and 0.7 * base * base <= width * height <= 1.35 * base * base
    assert abs(math.log((width / height) / CHANNELS[channel].ratio)) < 0.1


def test_brand_kit_round_trip_and_apply():
    assert load_brand_kit().is_empty
    kit = save_brand_kit(
        {"palette": ["#1B2A4A", "coral"], "must_use": ["eco-friendly"], "avoid": ["plastic"], "library": "faces"}
    )
    assert load_brand_kit() == kit
    prompt, negative = kit.apply("a cup", "blurry")
    assert prompt == "a cup, colour palette: navy, coral, eco-friendly"
    assert negative == "blurry, plastic"
    assert BrandKit.from_dict({"must_use": "bold, fresh"}).must_use == ["bold", "fresh"]
    with pytest.raises(TemplateError) as info:
        save_brand_kit({"palette": ["navy", "#zzz"]})
    assert info.value.field == "palette[1]" and "default.yaml" in str(info.value)
    with pytest.raises(BadInputError, match="workspace"):
        load_brand_kit("../etc")


@pytest.mark.parametrize(
    "text",
    [
        "id: x\nname: .nan\n",
        "id: x\nname: t\nchannels: [.inf]\n",
        "id: x\nname: " + "[" * 20_000 + "]" * 20_000 + "\n",
        "id: x\nname: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n",
        "- just\n- a list\n",
        "42\n",
    ],
)
def test_values_no_template_can_hold_are_refused_with_a_message(text):
    from core.templates.library import parse_template
    from core.templates.schema import TemplateError

    with pytest.raises(TemplateError):
        parse_template(text.encode(), "x")


def test_one_broken_user_template_never_hides_the_others(tmp_path):
    from core.templates import TemplateLibrary

    user = tmp_path / "user"
    user.mkdir()
    (user / "deep.yaml").write_text("id: deep\nname: " + "[" * 20_000 + "]" * 20_000 + "\n")
    (user / "nan.yaml").write_text("id: nan\nname: .nan\n")
    os.mkfifo(user / "pipe.yaml")
    library = TemplateLibrary(user_dir=user)
    ids = [t.id for t in library.list()]
    assert "social-post-set" in ids and not {"deep", "nan", "pipe"} & set(ids)
    assert len(library.problems()) == 3


def test_a_template_file_over_the_size_limit_is_refused_unread(tmp_path):
    from core.templates import TemplateLibrary
    from core.templates.library import MAX_TEMPLATE_BYTES
    from core.templates.schema import TemplateError

    user = tmp_path / "user"
    user.mkdir()
    (user / "huge.yaml").write_text("id: huge\nname: x\nnotes: '" + "a" * (MAX_TEMPLATE_BYTES + 10) + "'\n")
    library = TemplateLibrary(user_dir=user)
    assert "huge" not in [t.id for t in library.list()]
    with pytest.raises(TemplateError, match="too large"):
        library.get("huge")
