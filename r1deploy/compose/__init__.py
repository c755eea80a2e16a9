"""The rendered compose file: validation against the Compose spec and this stack's rules
(``validate``: entry points; ``registry``: the rules; ``services``: reading services;
``rules/``: one module a rule family), and Compose's variable interpolation
(``interpolation``)."""
