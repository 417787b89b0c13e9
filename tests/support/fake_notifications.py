#!/usr/bin/python3
"""A stand-in for the desktop's notification daemon (org.freedesktop.Notifications) on the
session bus: it records every notification as one JSON line in the file given as argument, so
the end-to-end test can see what the app showed. Run under the test's own dbus-daemon."""
import json
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

BUS_NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


class Notifications(dbus.service.Object):
    def __init__(self, bus, out):
        super().__init__(bus, PATH)
        self.out = out
        self.next_id = 1

    @dbus.service.method(BUS_NAME, in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app_name, replaces_id, icon, summary, body, actions, hints, timeout):
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"app": str(app_name), "summary": str(summary), "body": str(body)}) + "\n")
        self.next_id += 1
        return dbus.UInt32(self.next_id - 1)

    @dbus.service.method(BUS_NAME, in_signature="", out_signature="as")
    def GetCapabilities(self):
        return ["body"]

    @dbus.service.method(BUS_NAME, in_signature="u", out_signature="")
    def CloseNotification(self, nid):
        pass

    @dbus.service.method(BUS_NAME, in_signature="", out_signature="ssss")
    def GetServerInformation(self):
        return ("huddle-test", "huddle", "1", "1.2")


def main():
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    name = dbus.service.BusName(BUS_NAME, bus)
    Notifications(bus, sys.argv[1])
    print("ready", flush=True)
    _ = name
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
