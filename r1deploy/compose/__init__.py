"""The rendered compose file: validation against the Compose spec and this stack's rules
(``validate``), and Compose's variable interpolation (``interpolation``)."""
