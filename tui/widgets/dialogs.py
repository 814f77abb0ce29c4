"""Modal dialogs. Each has buttons and keys besides Escape (tmux delays Escape)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static


class Confirm(ModalScreen[bool]):
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical { width: 64; height: auto; border: thick $warning; background: $surface; padding: 0 1; }
    Confirm Horizontal { height: auto; align-horizontal: right; }
    Confirm Button { margin: 0 1; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n", "answer(False)", "No", id="confirm.no"),
        Binding("escape", "answer(False)", "Cancel", show=False),
    ]

    def __init__(self, title: str, body: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.title_text, self.body, self.yes, self.no = title, body, yes, no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"[b]{self.title_text}[/b]")
            yield Static(self.body)
            with Horizontal():
                yield Button(f"{self.yes} (y)", id="yes", variant="warning")
                yield Button(f"{self.no} (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class Prompt(ModalScreen[str | None]):
    """One line of text: Enter accepts, ctrl+c / Escape / the Cancel button cancel."""

    DEFAULT_CSS = """
    Prompt { align: center middle; }
    Prompt > Vertical { width: 76; height: auto; border: thick $accent; background: $surface; padding: 0 1; }
    Prompt Horizontal { height: auto; align-horizontal: right; }
    Prompt Button { margin: 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+s", "accept", "Save", id="prompt.save"),
        Binding("ctrl+c", "cancel", "Cancel", id="prompt.cancel"),
        Binding("escape", "cancel", "Cancel", show=False),
    ]

    def __init__(self, title: str, value: str = "", help: str = "", placeholder: str = "", ok: str = "Save") -> None:
        super().__init__()
        self.title_text, self.value, self.help, self.placeholder = title, value, help, placeholder
        self.ok = ok  # the button says what Enter does: Save, Export...

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"[b]{self.title_text}[/b]")
            if self.help:
                yield Static(self.help, classes="help")
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            with Horizontal():
                yield Button(f"{self.ok} (enter)", id="ok", variant="primary")
                yield Button("Cancel (ctrl+c)", id="cancel", compact=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.query_one(Input).value if event.button.id == "ok" else None)

    def action_accept(self) -> None:
        self.dismiss(self.query_one(Input).value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Choose(ModalScreen[int | None]):
    """Pick one of several lines (Enter), or cancel."""

    DEFAULT_CSS = """
    Choose { align: center middle; }
    Choose > Vertical { width: 76; height: auto; max-height: 20; border: thick $accent; background: $surface;
                        padding: 0 1; }
    Choose OptionList { height: auto; max-height: 14; }
    """
    BINDINGS = [
        Binding("ctrl+c", "cancel", "Cancel", id="choose.cancel"),
        Binding("escape", "cancel", "Cancel", show=False),
    ]

    def __init__(self, title: str, options: list[str], help: str = "", selected: int = 0) -> None:
        super().__init__()
        self.title_text, self.options, self.help, self.selected = title, options, help, selected

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"[b]{self.title_text}[/b]")
            if self.help:
                yield Static(self.help)
            yield OptionList(*self.options, id="choose-list")
            yield Button("Cancel (ctrl+c)", id="cancel", compact=True)

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ol.highlighted = min(self.selected, len(self.options) - 1) if self.options else None
        ol.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option_index)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
