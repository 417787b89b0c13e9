//! Two negotiations wired through a simulated network and a model PeerConnection, so crossing
//! offers, late answers and restarts can be replayed deterministically.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::*;

/// A model PeerConnection: just enough state to check that what the machine asks is legal.
#[derive(Default)]
struct ModelPc {
    local_offer: Option<String>,
    offers_made: u32,
    /// Exchanges completed from this side's point of view: (offer, answer).
    completed: Vec<(String, String)>,
    candidates: Vec<String>,
    restarts_offered: u32,
}

struct Side {
    name: &'static str,
    neg: Negotiation,
    pc: ModelPc,
}

struct World {
    sides: [Side; 2],
    /// Messages in flight: (to side index, input).
    net: VecDeque<(usize, Input)>,
    now: Instant,
    gave_up: Vec<(usize, GiveUpReason)>,
}

impl World {
    fn new() -> Self {
        let now = Instant::now();
        let policy = RepairPolicy::default();
        World {
            sides: [
                Side {
                    name: "alice",
                    neg: Negotiation::new("alice", "bob", policy, now),
                    pc: ModelPc::default(),
                },
                Side {
                    name: "bob",
                    neg: Negotiation::new("bob", "alice", policy, now),
                    pc: ModelPc::default(),
                },
            ],
            net: VecDeque::new(),
            now,
            gave_up: Vec::new(),
        }
    }

    /// Feeds an input to side `i` and carries out every resulting action (local results are fed
    /// back at once; messages to the other side go into the network).
    fn feed(&mut self, i: usize, input: Input) {
        let mut local = VecDeque::from([input]);
        while let Some(input) = local.pop_front() {
            let actions = self.sides[i].neg.handle(input, self.now);
            for a in actions {
                let side = &mut self.sides[i];
                match a {
                    Action::CreateOffer { ice_restart } => {
                        side.pc.offers_made += 1;
                        side.pc.restarts_offered += u32::from(ice_restart);
                        let sdp = format!("offer:{}:{}", side.name, side.pc.offers_made);
                        side.pc.local_offer = Some(sdp.clone());
                        local.push_back(Input::OfferReady(sdp));
                    }
                    Action::SendOffer(sdp) => self.net.push_back((1 - i, Input::RemoteOffer(sdp))),
                    Action::Rollback => {
                        assert!(
                            side.pc.local_offer.take().is_some(),
                            "{}: rollback without an offer",
                            side.name
                        );
                    }
                    Action::RollbackRemote => {}
                    Action::AcceptOffer(sdp) => {
                        let answer = format!("answer:{}", sdp);
                        side.pc.completed.push((sdp, answer.clone()));
                        local.push_back(Input::AnswerReady(answer));
                    }
                    Action::SendAnswer(sdp) => {
                        self.net.push_back((1 - i, Input::RemoteAnswer(sdp)))
                    }
                    Action::ApplyAnswer(sdp) => {
                        let offer = side.pc.local_offer.take();
                        match offer {
                            Some(o) if sdp == format!("answer:{o}") => {
                                side.pc.completed.push((o, sdp));
                                local.push_back(Input::AnswerApplied);
                            }
                            other => panic!(
                                "{}: answer {sdp} does not match local offer {other:?}",
                                side.name
                            ),
                        }
                    }
                    Action::AddCandidate(c) => side.pc.candidates.push(c.candidate),
                    Action::GiveUp(why) => self.gave_up.push((i, why)),
                }
            }
        }
    }

    /// Moves time `d` on, waking the sides in `who` at every deadline their `poll_timeout`
    /// names on the way, in order, as a driver sleeping until it would. The other sides sleep
    /// through it (their timeouts are not fed).
    fn advance(&mut self, who: &[usize], d: Duration) {
        let end = self.now + d;
        let mut wakeups = 0;
        while let Some((at, i)) = who
            .iter()
            .filter_map(|&i| Some((self.sides[i].neg.poll_timeout()?, i)))
            .filter(|(at, _)| *at <= end)
            .min()
        {
            self.now = self.now.max(at);
            self.feed(i, Input::Timeout);
            wakeups += 1;
            assert!(
                wakeups < 100,
                "{}: a timeout that does not move its deadline on",
                self.sides[i].name
            );
        }
        self.now = end;
    }

    /// Delivers every message in flight, in order, until the network is quiet.
    fn settle(&mut self) {
        let mut steps = 0;
        while let Some((to, input)) = self.net.pop_front() {
            self.feed(to, input);
            steps += 1;
            assert!(steps < 100, "negotiation does not settle");
        }
    }

    fn both_stable(&self) -> bool {
        self.sides
            .iter()
            .all(|s| s.neg.signaling() == SignalingState::Stable)
    }

    /// Both sides completed the same exchanges (in any order of discovery).
    fn agree(&self) -> bool {
        let mut a = self.sides[0].pc.completed.clone();
        let mut b = self.sides[1].pc.completed.clone();
        a.sort();
        b.sort();
        a == b
    }
}

#[test]
fn roles_follow_the_ids() {
    let w = World::new();
    assert!(
        !w.sides[0].neg.is_polite(),
        "the smaller id is impolite (and offers first)"
    );
    assert!(w.sides[1].neg.is_polite());
}

#[test]
fn a_plain_offer_answer_settles() {
    let mut w = World::new();
    w.feed(0, Input::NegotiationNeeded);
    w.settle();
    assert!(w.both_stable() && w.agree());
    assert_eq!(w.sides[0].pc.completed.len(), 1);
}

#[test]
fn crossing_offers_resolve_once_and_the_loser_renegotiates() {
    let mut w = World::new();
    // Both add a track at the same moment: two offers cross in the network.
    w.feed(0, Input::NegotiationNeeded);
    w.feed(1, Input::NegotiationNeeded);
    assert_eq!(w.net.len(), 2);
    w.settle();
    assert!(
        w.both_stable(),
        "{:?} {:?}",
        w.sides[0].neg.signaling(),
        w.sides[1].neg.signaling()
    );
    assert!(w.agree());
    // alice's (impolite) offer won; bob rolled his back and offered again afterwards.
    let completed: Vec<&str> = w.sides[0]
        .pc
        .completed
        .iter()
        .map(|(o, _)| o.as_str())
        .collect();
    assert_eq!(completed, ["offer:alice:1", "offer:bob:2"]);
}

#[test]
fn negotiation_needed_during_an_exchange_waits_for_stable() {
    let mut w = World::new();
    w.feed(0, Input::NegotiationNeeded);
    w.feed(0, Input::NegotiationNeeded); // a second track while the first offer is out
    assert_eq!(w.net.len(), 1, "one offer at a time");
    w.settle();
    assert!(w.both_stable() && w.agree());
    assert_eq!(
        w.sides[0].pc.offers_made, 2,
        "the change that waited was negotiated"
    );
}

/// A candidate whose line is `s` (the model PeerConnection records only the line).
fn line(s: &str) -> Candidate {
    Candidate {
        candidate: s.into(),
        sdp_mid: None,
        sdp_m_line_index: None,
        username_fragment: None,
    }
}

#[test]
fn candidates_wait_for_the_description_they_belong_to() {
    let mut w = World::new();
    w.feed(1, Input::RemoteCandidate(line("early")));
    assert!(w.sides[1].pc.candidates.is_empty());
    w.feed(0, Input::NegotiationNeeded);
    w.settle();
    assert_eq!(w.sides[1].pc.candidates, ["early"]);
    w.feed(1, Input::RemoteCandidate(line("later")));
    assert_eq!(w.sides[1].pc.candidates, ["early", "later"]);
}

#[test]
fn a_stale_answer_is_ignored() {
    let mut w = World::new();
    w.feed(0, Input::NegotiationNeeded);
    w.settle();
    let before = w.sides[0].pc.completed.len();
    w.feed(0, Input::RemoteAnswer("answer:offer:alice:1".into()));
    assert_eq!(w.sides[0].pc.completed.len(), before);
    assert!(w.both_stable());
}

#[test]
fn a_lost_link_is_repaired_by_the_impolite_side_with_an_ice_restart() {
    let mut w = World::new();
    w.feed(0, Input::NegotiationNeeded);
    w.settle();
    for i in 0..2 {
        w.feed(i, Input::LinkChanged(Link::Connected));
    }
    for i in 0..2 {
        w.feed(i, Input::LinkChanged(Link::Disconnected));
    }
    w.advance(&[0, 1], Duration::from_secs(1));
    assert!(w.net.is_empty(), "no restart before the bound");
    w.advance(&[0, 1], Duration::from_secs(3));
    w.settle();
    assert_eq!(w.sides[0].pc.restarts_offered, 1);
    assert_eq!(
        w.sides[1].pc.restarts_offered, 0,
        "the polite side never restarts: no glare"
    );
    assert!(w.both_stable() && w.agree());
    // Connected again: the counters reset and nothing more happens.
    for i in 0..2 {
        w.feed(i, Input::LinkChanged(Link::Connected));
    }
    w.advance(&[0, 1], Duration::from_secs(60));
    assert!(w.net.is_empty() && w.gave_up.is_empty());
}

#[test]
fn a_peer_that_never_comes_back_is_given_up_with_a_reason() {
    let mut w = World::new();
    w.feed(0, Input::NegotiationNeeded);
    w.settle();
    w.feed(0, Input::LinkChanged(Link::Failed));
    w.settle();
    for _ in 0..40 {
        w.advance(&[0], Duration::from_secs(1));
        w.settle();
    }
    assert!(w.sides[0].pc.restarts_offered <= RepairPolicy::default().max_restarts);
    assert_eq!(w.gave_up.len(), 1);
    assert_eq!(w.gave_up[0].1, GiveUpReason::NoRoute);
    assert!(
        w.gave_up[0].1.to_string().contains("TURN"),
        "the words point at the fix"
    );
    // After giving up, nothing more is done.
    w.feed(0, Input::NegotiationNeeded);
    assert!(w.net.is_empty());
}

#[test]
fn an_offer_that_could_not_be_sent_is_withdrawn_and_retried_after_a_pause() {
    let mut w = World::new();
    w.feed(0, Input::NegotiationNeeded);
    assert!(w.net.pop_front().is_some(), "the offer left");
    // ...but writing it to the database failed, and the driver says so.
    w.feed(0, Input::OperationFailed("could not send".into()));
    assert_eq!(
        w.sides[0].neg.signaling(),
        SignalingState::Stable,
        "rolled back"
    );
    w.advance(&[0], Duration::ZERO);
    assert!(w.net.is_empty(), "no retry in a hot loop");
    w.advance(&[0], Duration::from_secs(1));
    w.settle();
    assert!(w.both_stable() && w.agree());
    assert_eq!(w.sides[0].pc.offers_made, 2);
}

#[test]
fn an_offer_whose_answer_never_comes_is_made_again() {
    let mut w = World::new();
    w.feed(0, Input::NegotiationNeeded);
    w.net.clear(); // lost without a trace
    w.advance(&[0], Duration::from_secs(5));
    assert!(w.net.is_empty());
    w.advance(&[0], Duration::from_secs(6));
    w.settle();
    assert!(w.both_stable() && w.agree());
    assert_eq!(w.sides[0].pc.completed.len(), 1);
}

#[test]
fn an_offer_that_could_not_be_answered_is_rolled_back_and_the_next_one_is_answered() {
    let t0 = Instant::now();
    let mut bob = Negotiation::new("bob", "alice", RepairPolicy::default(), t0);
    let actions = bob.handle(Input::RemoteOffer("offer:1".into()), t0);
    assert!(
        actions.contains(&Action::AcceptOffer("offer:1".into())),
        "{actions:?}"
    );
    // Creating or setting the answer failed: the connection is left holding their offer.
    let actions = bob.handle(Input::OperationFailed("setting the answer".into()), t0);
    assert_eq!(actions, vec![Action::RollbackRemote]);
    assert_eq!(bob.signaling(), SignalingState::Stable);
    // Their offer, made again after their wait, is answered.
    let later = t0 + Duration::from_secs(10);
    let actions = bob.handle(Input::RemoteOffer("offer:2".into()), later);
    assert!(
        actions.contains(&Action::AcceptOffer("offer:2".into())),
        "{actions:?}"
    );
}

#[test]
fn the_next_timeout_is_the_nearest_thing_the_machine_would_do_on_its_own() {
    let mut w = World::new();
    let policy = RepairPolicy::default();
    let t0 = w.now;
    // Not connected yet: only the bound for giving up runs.
    assert_eq!(
        w.sides[0].neg.poll_timeout(),
        Some(t0 + policy.give_up_after)
    );
    w.feed(0, Input::NegotiationNeeded);
    assert_eq!(
        w.sides[0].neg.poll_timeout(),
        Some(t0 + policy.answer_timeout),
        "an offer out waits for its answer"
    );
    w.settle();
    for i in 0..2 {
        w.feed(i, Input::LinkChanged(Link::Connected));
    }
    assert_eq!(
        w.sides[0].neg.poll_timeout(),
        None,
        "connected and stable: idle"
    );
    assert_eq!(w.sides[1].neg.poll_timeout(), None);
    w.advance(&[0, 1], Duration::from_secs(2));
    let lost_at = w.now;
    for i in 0..2 {
        w.feed(i, Input::LinkChanged(Link::Disconnected));
    }
    assert_eq!(
        w.sides[0].neg.poll_timeout(),
        Some(lost_at + policy.restart_after),
        "the impolite side wakes to restart"
    );
    assert_eq!(
        w.sides[1].neg.poll_timeout(),
        Some(lost_at + policy.give_up_after),
        "the polite side never restarts: it wakes only to give up"
    );
}

/// Issue 18, item 2: when a forged occupant record makes the signaling carry nothing between
/// the two sides, neither may tell its user that a firewall is to blame.
#[test]
fn a_peer_whose_messages_never_arrive_is_given_up_on_signaling_not_the_network() {
    let mut w = World::new();
    w.feed(0, Input::NegotiationNeeded);
    for _ in 0..40 {
        // Everything written is lost (or ignored by the other side).
        w.net.clear();
        w.advance(&[0, 1], Duration::from_secs(1));
    }
    assert_eq!(w.gave_up.len(), 2, "{:?}", w.gave_up);
    for (_, why) in &w.gave_up {
        assert_eq!(*why, GiveUpReason::NoSignaling);
        let words = why.to_string();
        assert!(
            !words.contains("firewall") && !words.contains("TURN"),
            "{words}"
        );
    }
}

#[test]
fn a_connection_lost_after_a_good_exchange_still_blames_the_network() {
    let mut w = World::new();
    w.feed(0, Input::NegotiationNeeded);
    w.settle();
    for i in 0..2 {
        w.feed(i, Input::LinkChanged(Link::Connected));
    }
    for i in 0..2 {
        w.feed(i, Input::LinkChanged(Link::Failed));
    }
    for _ in 0..40 {
        w.advance(&[0, 1], Duration::from_secs(1));
        w.settle();
    }
    assert!(w.gave_up.iter().all(|(_, r)| *r == GiveUpReason::NoRoute));
    assert!(!w.gave_up.is_empty());
}
