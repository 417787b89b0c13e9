#!/usr/bin/python3
"""A window to share: one solid colour and a title, so that a receiver can tell it was this
window that was sent. Usage: coloured_window.py TITLE R G B [X Y]. Prints "drawn" once it is
on screen and painted; exits when its standard input closes. (The colour is GTK CSS: no cairo
bindings needed.)"""
import sys
import threading

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import GLib, Gtk  # noqa: E402


def main():
    title, r, g, b = sys.argv[1], *(int(v) for v in sys.argv[2:5])
    x, y = (int(v) for v in sys.argv[5:7]) if len(sys.argv) >= 7 else (600, 300)
    css = Gtk.CssProvider()
    css.load_from_data(f"window {{ background-color: rgb({r},{g},{b}); background-image: none; }}".encode())
    win = Gtk.Window(title=title)
    win.get_style_context().add_provider(css, Gtk.STYLE_PROVIDER_PRIORITY_USER)
    win.set_default_size(480, 270)
    win.move(x, y)
    shown = []

    def on_map(*_):
        if not shown:
            shown.append(True)
            # A moment for the first paint after mapping.
            GLib.timeout_add(300, lambda: print("drawn", flush=True) and False)
        return False

    win.connect("map-event", on_map)
    win.connect("destroy", Gtk.main_quit)
    win.show_all()

    def wait_stdin():
        sys.stdin.read()
        GLib.idle_add(Gtk.main_quit)

    threading.Thread(target=wait_stdin, daemon=True).start()
    Gtk.main()


if __name__ == "__main__":
    main()
