//! Negotiation with one remote peer as a pure state machine: "perfect negotiation" (the W3C
//! pattern) plus connection repair. No sockets and no clock: the driver feeds it inputs (what the
//! signaling and the PeerConnection reported, and the time), and carries out the actions it
//! returns, feeding their results back.
//!
//! Time, str0m style: [`Negotiation::poll_timeout`] says when the machine next has something to
//! do on its own (an unanswered offer to withdraw, a retry, an ICE restart, giving up); the
//! driver sleeps until then and feeds [`Input::Timeout`]. No fixed tick, so a test can jump
//! straight to the next deadline, and an idle connection wakes nobody.
//!
//! Roles: the peer with the larger id is *polite* (it rolls back its own offer when offers
//! cross); the smaller one is *impolite* (it ignores the crossing offer) and also the one that
//! sends the first offer and starts ICE restarts, so repairs never collide either.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;
use signal::room::Candidate;

/// The signaling state of the PeerConnection (the offer/answer exchange), as far as negotiation
/// cares; not to be confused with `signal::room::Signaling`, the room protocol's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalingState {
    /// No exchange in progress.
    Stable,
    /// My offer is set locally and sent; waiting for the answer.
    HaveLocalOffer,
    /// Their offer is being applied and answered.
    HaveRemoteOffer,
}

/// Transport health as the PeerConnection reports it; in JSON a word (`"connected"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// Not connected yet.
    New,
    Connecting,
    /// Media can flow.
    Connected,
    /// Lost contact; may come back by itself.
    Disconnected,
    /// ICE gave up.
    Failed,
}

impl Link {
    /// The state as a word, the same as its JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            Link::New => "new",
            Link::Connecting => "connecting",
            Link::Connected => "connected",
            Link::Disconnected => "disconnected",
            Link::Failed => "failed",
        }
    }
}

/// Why the machine gave up on a peer; in JSON a word (`"no_route"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GiveUpReason {
    /// No connection came up (or came back) within [`RepairPolicy::give_up_after`], ICE
    /// restarts included: no network path between us works, which is what a firewall or
    /// symmetric NAT does and a TURN relay would fix.
    #[error("could not reach this participant (a firewall may block direct connections; a TURN server would help)")]
    NoRoute,
    /// As `NoRoute`, but no offer/answer exchange completed in that time: the messages did not
    /// get through the signaling database (a client writing over them, a broken or different
    /// client on the other side), so the network is not to blame and TURN would not help.
    #[error("could not reach this participant: our offers and answers did not get through the room's database (another client may be interfering with the room, or theirs is not working)")]
    NoSignaling,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Tracks were added or removed locally (or the first offer is due).
    NegotiationNeeded,
    /// An offer arrived from the peer.
    RemoteOffer(String),
    /// An answer arrived from the peer.
    RemoteAnswer(String),
    /// A candidate arrived from the peer.
    RemoteCandidate(Candidate),
    /// My offer was created and set locally ([`Action::CreateOffer`] done).
    OfferReady(String),
    /// Their offer was applied and my answer created and set locally.
    AnswerReady(String),
    /// Their answer was applied.
    AnswerApplied,
    /// An operation failed (the driver's words); the machine recovers.
    OperationFailed(String),
    /// The transport changed state.
    LinkChanged(Link),
    /// The instant [`Negotiation::poll_timeout`] named has come (feeding it earlier, or more
    /// than once, is harmless: what is not due yet waits).
    Timeout,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create an offer (with an ICE restart if asked), set it locally, report `OfferReady`.
    CreateOffer { ice_restart: bool },
    /// Send this offer to the peer.
    SendOffer(String),
    /// Roll my own offer back (`rollback`), then apply theirs.
    Rollback,
    /// Roll their offer back (a remote `rollback`): answering it failed, and a connection left
    /// in have-remote-offer would refuse every later offer.
    RollbackRemote,
    /// Apply their offer, create and set the answer, report `AnswerReady`.
    AcceptOffer(String),
    /// Send this answer to the peer.
    SendAnswer(String),
    /// Apply their answer, report `AnswerApplied`.
    ApplyAnswer(String),
    /// Add their candidate (errors can be ignored while an offer is being ignored).
    AddCandidate(Candidate),
    /// Give up on this peer, for this reason.
    GiveUp(GiveUpReason),
}

/// Tunables of repair.
#[derive(Clone, Copy, Debug)]
pub struct RepairPolicy {
    /// A link disconnected this long is restarted.
    pub restart_after: Duration,
    /// ICE restarts tried before giving up.
    pub max_restarts: u32,
    /// A link not connected this long after it was lost (or after the first offer) is given up.
    pub give_up_after: Duration,
    /// An offer unanswered this long is withdrawn and made again (it or its answer was lost).
    pub answer_timeout: Duration,
    /// Pause before retrying after a failed operation.
    pub retry_after: Duration,
}

impl Default for RepairPolicy {
    fn default() -> Self {
        RepairPolicy {
            restart_after: Duration::from_secs(3),
            max_restarts: 3,
            give_up_after: Duration::from_secs(30),
            answer_timeout: Duration::from_secs(10),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// Negotiation with one peer.
#[derive(Debug)]
pub struct Negotiation {
    polite: bool,
    signaling: SignalingState,
    making_offer: bool,
    ignore_offer: bool,
    pending: bool,
    has_remote_description: bool,
    queued_candidates: VecDeque<Candidate>,
    link: Link,
    unhealthy_since: Option<Instant>,
    restarts: u32,
    restart_pending: bool,
    given_up: bool,
    /// An offer/answer exchange completed since the link was last healthy: if it still does not
    /// connect, the network is to blame, not signaling.
    exchanged: bool,
    offer_sent_at: Option<Instant>,
    retry_at: Option<Instant>,
    policy: RepairPolicy,
}

impl Negotiation {
    /// Negotiation between `me` and `them` (ids decide the roles).
    pub fn new(me: &str, them: &str, policy: RepairPolicy, now: Instant) -> Self {
        Negotiation {
            polite: me > them,
            signaling: SignalingState::Stable,
            making_offer: false,
            ignore_offer: false,
            pending: false,
            has_remote_description: false,
            queued_candidates: VecDeque::new(),
            link: Link::New,
            unhealthy_since: Some(now),
            restarts: 0,
            restart_pending: false,
            given_up: false,
            exchanged: false,
            offer_sent_at: None,
            retry_at: None,
            policy,
        }
    }

    /// True for the side that yields when offers cross.
    pub fn is_polite(&self) -> bool {
        self.polite
    }

    /// The signaling state.
    pub fn signaling(&self) -> SignalingState {
        self.signaling
    }

    /// The transport state last reported.
    pub fn link(&self) -> Link {
        self.link
    }

    /// When the machine next needs [`Input::Timeout`]: the earliest of the answer wait, the
    /// retry pause, the restart due on a lost link, and giving up. `None`: nothing will happen
    /// until something else does. Each deadline is one that [`Input::Timeout`] at that instant
    /// acts on and moves past, so a driver sleeping until it never spins.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.given_up {
            return None;
        }
        let answer = self
            .offer_sent_at
            .filter(|_| self.signaling == SignalingState::HaveLocalOffer)
            .map(|sent| sent + self.policy.answer_timeout);
        let give_up = self
            .unhealthy_since
            .map(|since| since + self.policy.give_up_after);
        let lost = matches!(self.link, Link::Disconnected | Link::Failed);
        let restart = self
            .unhealthy_since
            .filter(|_| lost && self.may_restart())
            .map(|since| since + self.policy.restart_after * (self.restarts + 1));
        [answer, self.retry_at, give_up, restart]
            .into_iter()
            .flatten()
            .min()
    }

    /// Feeds one input at time `now`; returns the actions to carry out, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        if self.given_up {
            return Vec::new();
        }
        match input {
            Input::NegotiationNeeded => self.negotiate(false),
            Input::OfferReady(sdp) => {
                self.making_offer = false;
                self.signaling = SignalingState::HaveLocalOffer;
                self.offer_sent_at = Some(now);
                vec![Action::SendOffer(sdp)]
            }
            Input::RemoteOffer(sdp) => self.remote_offer(sdp),
            Input::AnswerReady(sdp) => {
                self.signaling = SignalingState::Stable;
                self.has_remote_description = true;
                self.exchanged = true;
                let mut out = vec![Action::SendAnswer(sdp)];
                out.extend(self.flush_candidates());
                out.extend(self.after_stable());
                out
            }
            Input::RemoteAnswer(sdp) => {
                if self.signaling != SignalingState::HaveLocalOffer {
                    // An answer to an offer that was rolled back or already answered.
                    return Vec::new();
                }
                vec![Action::ApplyAnswer(sdp)]
            }
            Input::AnswerApplied => {
                self.signaling = SignalingState::Stable;
                self.offer_sent_at = None;
                self.has_remote_description = true;
                self.exchanged = true;
                let mut out = self.flush_candidates();
                out.extend(self.after_stable());
                out
            }
            Input::RemoteCandidate(c) => {
                if self.has_remote_description && self.signaling != SignalingState::HaveRemoteOffer
                {
                    vec![Action::AddCandidate(c)]
                } else if self.ignore_offer {
                    Vec::new()
                } else {
                    // Trickled ahead of the description it belongs to: hold it.
                    self.queued_candidates.push_back(c);
                    Vec::new()
                }
            }
            Input::OperationFailed(_) => {
                // Back to a known state; the change is retried after a pause (never in a hot loop).
                let mut out = Vec::new();
                self.making_offer = false;
                match self.signaling {
                    SignalingState::HaveLocalOffer => {
                        out.push(Action::Rollback);
                        self.pending = true;
                    }
                    // Their offer stays unanswered: they make it again when their wait for an
                    // answer runs out, and this time it can be applied.
                    SignalingState::HaveRemoteOffer => out.push(Action::RollbackRemote),
                    SignalingState::Stable => {}
                }
                self.signaling = SignalingState::Stable;
                self.offer_sent_at = None;
                self.retry_at = Some(now + self.policy.retry_after);
                out
            }
            Input::LinkChanged(link) => self.link_changed(link, now),
            Input::Timeout => self.timeout(now),
        }
    }

    fn negotiate(&mut self, ice_restart: bool) -> Vec<Action> {
        if self.making_offer || self.signaling != SignalingState::Stable || self.retry_at.is_some()
        {
            self.pending = true;
            self.restart_pending |= ice_restart;
            return Vec::new();
        }
        self.making_offer = true;
        self.pending = false;
        let ice_restart = ice_restart || std::mem::take(&mut self.restart_pending);
        vec![Action::CreateOffer { ice_restart }]
    }

    fn remote_offer(&mut self, sdp: String) -> Vec<Action> {
        let collision = self.making_offer || self.signaling != SignalingState::Stable;
        self.ignore_offer = !self.polite && collision;
        if self.ignore_offer {
            return Vec::new();
        }
        let mut out = Vec::new();
        if collision {
            // My offer loses: it is re-sent once the exchange settles.
            out.push(Action::Rollback);
            self.making_offer = false;
            self.pending = true;
        }
        self.signaling = SignalingState::HaveRemoteOffer;
        out.push(Action::AcceptOffer(sdp));
        out
    }

    fn flush_candidates(&mut self) -> Vec<Action> {
        self.queued_candidates
            .drain(..)
            .map(Action::AddCandidate)
            .collect()
    }

    fn after_stable(&mut self) -> Vec<Action> {
        if self.pending && self.signaling == SignalingState::Stable {
            let restart = std::mem::take(&mut self.restart_pending);
            return self.negotiate(restart);
        }
        Vec::new()
    }

    fn link_changed(&mut self, link: Link, now: Instant) -> Vec<Action> {
        self.link = link;
        match link {
            Link::Connected => {
                self.unhealthy_since = None;
                self.restarts = 0;
                Vec::new()
            }
            Link::Failed => {
                self.lost_at(now);
                self.try_restart(now)
            }
            Link::Disconnected => {
                self.lost_at(now);
                Vec::new()
            }
            Link::New | Link::Connecting => Vec::new(),
        }
    }

    /// The link was lost at `now` (unless it already was): what came before it is no proof
    /// that signaling still works.
    fn lost_at(&mut self, now: Instant) {
        if self.unhealthy_since.is_none() {
            self.unhealthy_since = Some(now);
            self.exchanged = false;
        }
    }

    fn timeout(&mut self, now: Instant) -> Vec<Action> {
        if let Some(sent) = self.offer_sent_at {
            if self.signaling == SignalingState::HaveLocalOffer
                && now.duration_since(sent) >= self.policy.answer_timeout
            {
                // The offer or its answer was lost: withdraw it and make it again.
                self.offer_sent_at = None;
                self.signaling = SignalingState::Stable;
                self.pending = true;
                let mut out = vec![Action::Rollback];
                out.extend(self.negotiate(false));
                return out;
            }
        }
        if self.retry_at.is_some_and(|at| now >= at) {
            self.retry_at = None;
            let out = self.after_stable();
            if !out.is_empty() {
                return out;
            }
        }
        let Some(since) = self.unhealthy_since else {
            return Vec::new();
        };
        if now.duration_since(since) >= self.policy.give_up_after {
            self.given_up = true;
            let why = if self.exchanged {
                GiveUpReason::NoRoute
            } else {
                GiveUpReason::NoSignaling
            };
            return vec![Action::GiveUp(why)];
        }
        let lost = matches!(self.link, Link::Disconnected | Link::Failed);
        let restart_due =
            now.duration_since(since) >= self.policy.restart_after * (self.restarts + 1);
        if lost && restart_due {
            return self.try_restart(now);
        }
        Vec::new()
    }

    /// The impolite side restarts; the polite one waits for its offer, so restarts never cross.
    fn may_restart(&self) -> bool {
        !self.polite && self.restarts < self.policy.max_restarts
    }

    fn try_restart(&mut self, _now: Instant) -> Vec<Action> {
        if !self.may_restart() {
            return Vec::new();
        }
        self.restarts += 1;
        self.negotiate(true)
    }
}

#[cfg(test)]
mod tests;
