#!/usr/bin/python3
"""Another application taking the keyboard focus (as when the user switches away from Huddle):
a small GTK window that presents itself. Prints "focused" once it has the focus; exits when
its standard input closes."""
import sys
import threading

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import GLib, Gtk  # noqa: E402


def main():
    win = Gtk.Window(title="Another app")
    win.set_default_size(200, 120)
    win.move(0, 0)

    def on_focus(*_):
        print("focused", flush=True)
        return False

    win.connect("focus-in-event", on_focus)
    win.connect("destroy", Gtk.main_quit)
    win.show_all()
    win.present()

    def wait_stdin():
        sys.stdin.read()
        GLib.idle_add(Gtk.main_quit)

    threading.Thread(target=wait_stdin, daemon=True).start()
    Gtk.main()


if __name__ == "__main__":
    main()
