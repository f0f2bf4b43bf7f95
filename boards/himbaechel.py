"""Gowin builds through ``nextpnr-himbaechel``: amaranth 0.5's Apicula flow calls the retired
``nextpnr-gowin``; its successor takes the family and the constraints as ``--vopt`` options."""

from __future__ import annotations

__all__ = ["himbaechel_platform"]


def himbaechel_platform(platform_class: type) -> type:
    """``platform_class`` (an amaranth Gowin platform) with its Apicula flow calling
    ``nextpnr-himbaechel`` (family and constraints as ``--vopt``) instead of ``nextpnr-gowin``."""
    pnr = (r"""
        {{invoke_tool("nextpnr-himbaechel")}}
            {{quiet("--quiet")}}
            {{get_override("nextpnr_opts")|options}}
            --log {{name}}.tim
            --device {{platform.part}}
            --vopt family={{platform._chipdb_device}}
            --vopt cst={{name}}.cst
            --json {{name}}.syn.json
            --write {{name}}.pnr.json
        """)
    commands = [pnr if "nextpnr-gowin" in template else template
                for template in platform_class._apicula_command_templates]
    tools = ["nextpnr-himbaechel" if tool == "nextpnr-gowin" else tool for tool in platform_class._apicula_required_tools]
    return type(platform_class.__name__, (platform_class,), {
        "_apicula_command_templates": commands, "_apicula_required_tools": tools, "__module__": platform_class.__module__})
