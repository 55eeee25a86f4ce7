"""A registry of side panels (no Qt), so later issues plug in implant/simulation/trajectory panels.

A ``PanelSpec`` names its widget factory by dotted path (``"package.module:Factory"``), so this module
stays free of Qt; the UI imports the factory when it builds the window and calls
``factory(session, context)`` where ``context`` gives access to the app (jobs, undo stack, 3D scene).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from surgtwin.core.errors import SurgtwinError

AREAS = ("left", "right", "bottom")


@dataclass(frozen=True)
class PanelSpec:
    id: str
    title: str
    factory: str  # "module:callable" returning a QWidget
    area: str = "right"
    order: int = 100
    shortcut: str | None = None
    tab_with: str | None = None  # id of a panel in the same area to share a tabbed dock with

    def load_factory(self):
        mod, _, attr = self.factory.partition(":")
        try:
            return getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as exc:
            raise SurgtwinError(f"panel {self.id!r}: cannot load {self.factory!r} ({exc})") from None


class PanelRegistry:
    def __init__(self, specs=()) -> None:
        self._specs: dict[str, PanelSpec] = {}
        for s in specs:
            self.register(s)

    def register(self, spec: PanelSpec) -> None:
        if spec.area not in AREAS:
            raise SurgtwinError(f"panel {spec.id!r}: area must be one of {AREAS}, got {spec.area!r}")
        if spec.id in self._specs:
            raise SurgtwinError(f"panel id {spec.id!r} is registered twice")
        self._specs[spec.id] = spec

    def unregister(self, panel_id: str) -> None:
        self._specs.pop(panel_id, None)

    def specs(self) -> list[PanelSpec]:
        return sorted(self._specs.values(), key=lambda s: (s.order, s.id))

    def __contains__(self, panel_id: str) -> bool:
        return panel_id in self._specs

    def __len__(self) -> int:
        return len(self._specs)


def default_registry() -> PanelRegistry:
    """The panels the app ships. Later issues add theirs here (implants, simulation, trajectories)."""
    return PanelRegistry([
        PanelSpec("structures", "Structures", "surgtwin.ui.structure_panel:StructurePanel", "right", 10, "Ctrl+1"),
        PanelSpec("tools", "Edit && measure", "surgtwin.ui.tools_panel:ToolsPanel", "right", 20, "Ctrl+2"),
        PanelSpec("case", "Case", "surgtwin.ui.case_panel:CasePanel", "right", 30, "Ctrl+3", tab_with="tools"),
        PanelSpec("implants", "Implants", "surgtwin.ui.implant_panel:ImplantPanel", "right", 40, "Ctrl+4",
                  tab_with="tools"),
        PanelSpec("fem", "Simulation", "surgtwin.ui.fem_panel:FemPanel", "right", 50, "Ctrl+5", tab_with="tools"),
        PanelSpec("flow", "Blood flow", "surgtwin.ui.flow_panel:FlowPanel", "right", 60, "Ctrl+6", tab_with="tools"),
        PanelSpec("tavr", "TAVR", "surgtwin.ui.tavr_panel:TavrPanel", "right", 70, "Ctrl+7", tab_with="tools"),
        PanelSpec("trajectory", "Trajectory", "surgtwin.ui.trajectory_panel:TrajectoryPanel", "right", 80, "Ctrl+8",
                  tab_with="tools"),
        PanelSpec("rehearsal", "Rehearsal", "surgtwin.ui.rehearsal_panel:RehearsalPanel", "right", 90, "Ctrl+9",
                  tab_with="tools"),
    ])
