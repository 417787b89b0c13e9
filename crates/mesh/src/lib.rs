//! Huddle's room engine. Today: the negotiation logic with one remote peer as a pure state
//! machine ([`negotiation`]): perfect negotiation (polite/impolite by peer id, rollback),
//! candidates held until their description is set, ICE-restart repair and giving up. The async
//! driver over webrtc-rs that runs it (one task per remote peer) is the next step.

#![forbid(unsafe_code)]

pub mod negotiation;
