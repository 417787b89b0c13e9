//! The call I am in: the engine's handle, what I send, who is there, and the task that turns
//! the engine's events into UI events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mesh::{MediaKind, Mesh, MeshEvent};
use signal::room::StreamConfig;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::core::{Outlet, UserError};
use crate::events::UiEvent;
use crate::frames::Compositor;

/// Who is in the call, as the page needs to rebuild its tiles after a reload.
#[derive(Clone, Debug)]
struct MemberInfo {
    name: String,
    streams: StreamConfig,
}

/// A call in progress.
pub struct Call {
    mesh: Mesh,
    /// Room id.
    pub room: String,
    /// Room name.
    pub name: String,
    me: String,
    /// What I send.
    pub streams: StreamConfig,
    /// A private room (its invitation works in the app only).
    pub secured: bool,
    /// The real microphone's controls (its muted-speaking hint), when one is used.
    pub mic: Option<devices::MicControl>,
    members: Arc<Mutex<BTreeMap<String, MemberInfo>>>,
    task: Option<JoinHandle<()>>,
}

impl Call {
    /// A call on `mesh`.
    pub fn new(mesh: Mesh, room: String, name: String, me: String) -> Self {
        Call {
            mesh,
            room,
            name,
            me,
            streams: StreamConfig::default(),
            secured: false,
            mic: None,
            members: Arc::default(),
            task: None,
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

    /// Tells a freshly loaded page who is here.
    pub fn replay_members(&self, outlet: &dyn Outlet) {
        let members = self
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (peer, m) in members {
            outlet.emit(UiEvent::MemberJoined {
                peer,
                name: m.name,
                streams: m.streams,
            });
        }
    }

    /// Starts or stops one of my streams.
    ///
    /// The microphone is muted rather than closed once it runs (see `Mesh::set_muted`): the
    /// others see it off, but it keeps listening for the "you are muted" hint and unmutes at
    /// once.
    pub async fn set_stream(&mut self, kind: MediaKind, on: bool) -> Result<(), UserError> {
        let result = if kind == MediaKind::Audio {
            if let Some(mic) = &self.mic {
                mic.set_muted(!on);
            }
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
                Err(UserError {
                    message: format!("cannot start the {what}: {e}"),
                    hint: hint.map(str::to_owned),
                })
            }
        }
    }

    /// Forwards the engine's events to the page until the call ends.
    /// When the call ends by itself (room closed, signaling failed for good), `slot` is
    /// emptied, which leaves.
    pub fn forward(
        &mut self,
        mut events: mpsc::Receiver<MeshEvent>,
        outlet: Arc<dyn Outlet>,
        frames: Arc<Compositor>,
        slot: Arc<tokio::sync::Mutex<Option<Call>>>,
    ) {
        let members = self.members.clone();
        let room = self.room.clone();
        self.task = Some(tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                match &ev {
                    MeshEvent::MemberJoined {
                        peer_id,
                        name,
                        streams,
                    } => {
                        let info = MemberInfo {
                            name: name.clone(),
                            streams: *streams,
                        };
                        members
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(peer_id.clone(), info);
                    }
                    MeshEvent::StreamsChanged { peer_id, streams } => {
                        if let Some(m) = members
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_mut(peer_id)
                        {
                            m.streams = *streams;
                        }
                        if !streams.video {
                            frames.remove_prefix(&format!("{peer_id}:video"));
                        }
                        if !streams.screen {
                            frames.remove_prefix(&format!("{peer_id}:screen"));
                        }
                    }
                    MeshEvent::MemberLeft { peer_id, .. } => {
                        members
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(peer_id);
                        frames.remove_prefix(&format!("{peer_id}:"));
                    }
                    MeshEvent::RoomClosed => {
                        end(&slot, &room, &frames).await;
                        outlet.emit(UiEvent::Left {
                            reason: "the room was closed".into(),
                        });
                        return;
                    }
                    _ => {}
                }
                if let Some(ui) = UiEvent::from_mesh(ev) {
                    outlet.emit(ui);
                }
            }
            // The engine stopped (signaling failed for good): the call is over.
            if end(&slot, &room, &frames).await {
                outlet.emit(UiEvent::Left {
                    reason: "the call's connection to the database failed".into(),
                });
            }
        }));
    }

    /// Leaves the room.
    pub async fn leave(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.mesh.leave().await;
    }
}

/// Forgets the call in `slot` if it is still the one in `room`; true if it was.
async fn end(slot: &tokio::sync::Mutex<Option<Call>>, room: &str, frames: &Compositor) -> bool {
    let mut guard = slot.lock().await;
    if guard.as_ref().is_some_and(|c| c.room == room) {
        // Dropping the call drops the engine's handle, which leaves the room.
        let _ = guard.take();
        frames.remove_prefix("");
        true
    } else {
        false
    }
}
