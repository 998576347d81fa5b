"""`{{ text|shown }}`: user-chosen plain text (batch names, ids, file names, notes) with its bidirectional controls
visible, as the HIT page shows prompts and responses (annotate.rendering). A builtin (settings.TEMPLATES), so every
template has it without a {% load %}. The result is still escaped by the template."""

from django import template

from annotate.rendering import visible_controls

register = template.Library()
register.filter("shown", visible_controls, is_safe=False)
