//! The owner's side of a joined room: a handle that sends commands to the driver task and
//! waits for their outcome.

use tokio::sync::{mpsc, oneshot};

use super::model::Candidate;
use super::SignalError;
use crate::id::{PeerId, RoomId};
use media::StreamConfig;

/// A message to another member.
pub(super) enum Outgoing {
    Offer(String),
    Answer(String),
    Candidate(Candidate),
}

type Reply = oneshot::Sender<Result<(), SignalError>>;

/// What the handle asks of the driver; each carries where to send the outcome.
pub(super) enum Command {
    SetStreams(StreamConfig, Reply),
    Send {
        to: PeerId,
        msg: Outgoing,
        reply: Reply,
    },
    Leave(Reply),
}

/// My membership of a room. Dropping it leaves the room.
pub struct RoomHandle {
    tx: mpsc::Sender<Command>,
    me: PeerId,
    room_id: RoomId,
}

impl RoomHandle {
    pub(super) fn new(tx: mpsc::Sender<Command>, me: PeerId, room_id: RoomId) -> Self {
        RoomHandle { tx, me, room_id }
    }

    /// My peer id.
    pub fn peer_id(&self) -> &PeerId {
        &self.me
    }

    /// The room's id.
    pub fn room_id(&self) -> &RoomId {
        &self.room_id
    }

    async fn call(&self, make: impl FnOnce(Reply) -> Command) -> Result<(), SignalError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| SignalError::Closed)?;
        answer.await.map_err(|_| SignalError::Closed)?
    }

    /// Tells the room what I now send.
    pub async fn set_streams(&self, streams: StreamConfig) -> Result<(), SignalError> {
        self.call(|r| Command::SetStreams(streams, r)).await
    }

    /// Sends an offer to `to`.
    pub async fn send_offer(&self, to: &PeerId, sdp: String) -> Result<(), SignalError> {
        self.send(to, Outgoing::Offer(sdp)).await
    }

    /// Answers `to`'s offer.
    pub async fn send_answer(&self, to: &PeerId, sdp: String) -> Result<(), SignalError> {
        self.send(to, Outgoing::Answer(sdp)).await
    }

    /// Trickles a candidate to `to`.
    pub async fn send_candidate(
        &self,
        to: &PeerId,
        candidate: Candidate,
    ) -> Result<(), SignalError> {
        self.send(to, Outgoing::Candidate(candidate)).await
    }

    async fn send(&self, to: &PeerId, msg: Outgoing) -> Result<(), SignalError> {
        self.call(|reply| Command::Send {
            to: to.clone(),
            msg,
            reply,
        })
        .await
    }

    /// Leaves: removes everything I own in the room in one atomic write.
    pub async fn leave(&self) -> Result<(), SignalError> {
        self.call(Command::Leave).await
    }
}
