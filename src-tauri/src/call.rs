//! The call I am in: the engine's handle, what I send, and the two event streams the app core
//! reads while the call lasts (the engine's and the devices').

use std::sync::Arc;

use devices::{DeviceChoice, DeviceEvent, DeviceSources, MicControl};
use media::MediaKind;
use media::StreamConfig;
use mesh::{Mesh, MeshEvent};
use signal::{PeerId, RoomId};
use tokio::sync::{broadcast, mpsc};

use crate::error::UserError;
use crate::events::UiEvent;

/// A call in progress.
pub struct Call {
    mesh: Mesh,
    pub room: RoomId,
    /// The room's name.
    pub name: String,
    /// My peer id.
    pub me: PeerId,
    /// What I send.
    pub streams: StreamConfig,
    /// A private room (its invitation works in the app only).
    pub secured: bool,
    /// The secret I joined a private room with, kept while the call lasts to rejoin it
    /// (hosting for the LAN moves the call); never written anywhere.
    pub secret: Option<String>,
    /// The microphone's controls (its muted-speaking hint and level).
    pub mic: MicControl,
    /// The call's devices (a screen share picks its display or window here).
    sources: Arc<DeviceSources>,
    events: mpsc::Receiver<MeshEvent>,
    devices: Option<broadcast::Receiver<DeviceEvent>>,
}

/// What happened in the call.
pub enum CallInput {
    Mesh(MeshEvent),
    Device(DeviceEvent),
    /// The engine stopped by itself (its signaling failed for good).
    Ended,
}

/// The parts of a joined call.
pub struct Joined {
    pub mesh: Mesh,
    pub events: mpsc::Receiver<MeshEvent>,
    pub devices: broadcast::Receiver<DeviceEvent>,
    pub mic: MicControl,
    pub sources: Arc<DeviceSources>,
}

impl Call {
    pub fn new(joined: Joined, room: RoomId, name: String, me: PeerId, secured: bool) -> Self {
        Call {
            mesh: joined.mesh,
            room,
            name,
            me,
            streams: StreamConfig::default(),
            secured,
            secret: None,
            mic: joined.mic,
            sources: joined.sources,
            events: joined.events,
            devices: Some(joined.devices),
        }
    }

    /// The `joined` event of this call.
    pub fn joined_event(&self) -> UiEvent {
        UiEvent::Joined {
            room: self.room.clone(),
            name: self.name.clone(),
            me: self.me.clone(),
            streams: self.streams,
        }
    }

    /// The `left` event of this call.
    pub fn left_event(&self, reason: &str) -> UiEvent {
        UiEvent::Left {
            room: self.room.clone(),
            name: self.name.clone(),
            reason: reason.to_owned(),
        }
    }

    /// Starts or stops one of my streams.
    ///
    /// The microphone is muted rather than closed once it runs (see `Mesh::set_muted`): the
    /// others see it off, but it keeps listening for the "you are muted" hint and unmutes at
    /// once.
    pub async fn set_stream(&mut self, kind: MediaKind, on: bool) -> Result<(), UserError> {
        let result = if kind == MediaKind::Audio {
            self.mic.set_muted(!on);
            self.mesh.set_muted(!on).await
        } else {
            self.mesh.set_stream(kind, on).await
        };
        match result {
            Ok(()) => {
                self.streams.set(kind, on);
                Ok(())
            }
            Err(e) => {
                let what = kind.device_name();
                let hint = matches!(e, mesh::MeshError::Media(_)).then_some(
                    "The call goes on without it. Pick another device in Settings → Devices.",
                );
                Err(UserError::new(
                    format!("cannot start the {what}: {e}"),
                    hint,
                ))
            }
        }
    }

    /// Shares `target` (a display, a window `window:<id>`, or the test pattern), in place of
    /// what I share now, if anything.
    pub async fn share(&mut self, target: DeviceChoice) -> Result<(), UserError> {
        if self.streams.screen {
            self.set_stream(MediaKind::Screen, false).await?;
        }
        self.sources.share_next(target);
        self.set_stream(MediaKind::Screen, true).await
    }

    /// The next thing that happened. Safe to cancel: nothing is lost when another branch of
    /// the caller's `select!` wins.
    pub async fn next(&mut self) -> CallInput {
        use broadcast::error::RecvError;
        loop {
            tokio::select! {
                ev = self.events.recv() => return match ev {
                    Some(ev) => CallInput::Mesh(ev),
                    None => CallInput::Ended,
                },
                ev = recv(&mut self.devices), if self.devices.is_some() => match ev {
                    Ok(ev) => return CallInput::Device(ev),
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "device events were dropped");
                    }
                    Err(RecvError::Closed) => self.devices = None,
                },
            }
        }
    }

    /// Leaves the room.
    pub async fn leave(self) {
        self.mesh.leave().await;
    }
}

async fn recv(
    rx: &mut Option<broadcast::Receiver<DeviceEvent>>,
) -> Result<DeviceEvent, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
