"""Campaign templates (YAML data) and the workspace brand kit.

::

    library = TemplateLibrary()
    template = library.get("social-post-set")            # validated; errors name file and field
    values = template.resolve_fields({"product": "oat milk"})
    prompt, negative = template.render(values, template.variations.styles[0], "story")
    copy = library.duplicate("social-post-set", "my-set"); library.save(copy)
    kit = load_brand_kit(); prompt, negative = kit.apply(prompt, negative)
"""

from core.templates.brand import DEFAULT_WORKSPACE, BrandKit, load_brand_kit, save_brand_kit
from core.templates.formats import CHANNELS, FAMILY_BASE, ChannelFormat, local_score_size, model_family, size_for
from core.templates.library import (
    BUILTIN_DIR,
    TemplateLibrary,
    dump_template,
    get_template,
    parse_template,
    user_templates_dir,
)
from core.templates.schema import (
    FIELD_TYPES,
    Style,
    Template,
    TemplateError,
    TemplateField,
    VariationStrategy,
    fill,
    placeholders,
)

__all__ = [
    "BUILTIN_DIR",
    "CHANNELS",
    "DEFAULT_WORKSPACE",
    "FAMILY_BASE",
    "FIELD_TYPES",
    "BrandKit",
    "ChannelFormat",
    "Style",
    "Template",
    "TemplateError",
    "TemplateField",
    "TemplateLibrary",
    "VariationStrategy",
    "dump_template",
    "fill",
    "get_template",
    "load_brand_kit",
    "local_score_size",
    "model_family",
    "parse_template",
    "placeholders",
    "save_brand_kit",
    "size_for",
    "user_templates_dir",
]
