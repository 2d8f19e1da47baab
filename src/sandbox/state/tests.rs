use super::*;
use crate::clock::ManualClock;
use crate::sandbox::SandboxKey;
use secrecy::SecretString;
use std::time::Duration;

fn state() -> (SandboxState, std::sync::Arc<ManualClock>) {
    let clock = ManualClock::at(1_700_000_000_000);
    let key = SandboxKey {
        secret_id: "id".into(),
        secret_key: SecretString::from("k"),
        token: None,
    };
    (
        SandboxState::new(SandboxConfig::new(key, clock.clone())),
        clock,
    )
}

#[test]
fn quota_counts_per_wall_clock_second() {
    let (s, clock) = state();
    for _ in 0..5 {
        assert!(s.admit("AllocateCustomerCredit"));
    }
    assert!(!s.admit("AllocateCustomerCredit"));
    clock.advance(Duration::from_secs(1));
    assert!(s.admit("AllocateCustomerCredit"));
    let stats = s.stats().action("AllocateCustomerCredit");
    assert_eq!(
        (stats.arrivals, stats.rate_limited, stats.max_per_second),
        (7, 1, 6)
    );
}

#[test]
fn cooldown_is_per_address_with_a_case_insensitive_domain() {
    let (s, clock) = state();
    assert!(s.invite("abc@example.com").is_ok());
    assert_eq!(
        s.invite("abc@EXAMPLE.com").unwrap_err().0,
        "FailedOperation.SendMailLimit180"
    );
    assert!(s.invite("other@example.com").is_ok());
    clock.advance(Duration::from_secs(179));
    assert!(s.invite("abc@example.com").is_err());
    clock.advance(Duration::from_secs(1));
    assert!(s.invite("abc@example.com").is_ok());
    assert_eq!(
        s.invite(REGISTERED_EMAIL).unwrap_err().0,
        "FailedOperation.MailIsRegistered"
    );
}

#[test]
fn ledger_never_goes_below_zero_and_keeps_history() {
    let (s, _) = state();
    let uin = SEEDED_CUSTOMERS[0];
    assert_eq!(
        s.allocate("op", uin, 10_050, "first").unwrap(),
        (100.5, 100.5)
    );
    assert_eq!(
        s.allocate("op", uin, -20_000, "too much").unwrap_err().0,
        "FailedOperation"
    );
    assert_eq!(s.allocate("op", uin, -50, "").unwrap(), (100.0, 100.0));
    assert_eq!(
        s.allocate("op", 1, 1, "").unwrap_err().0,
        "UnauthorizedOperation.UinNoAuth"
    );
    assert_eq!(
        s.allocate("op", uin, 200_000_000, "").unwrap_err().0,
        "FailedOperation.BalanceInsufficient"
    );
    let (total, page) = s.history(uin, 1, 10).unwrap();
    assert_eq!(total, 2);
    assert_eq!(page[0].remark, "");
    assert_eq!(page[1].remark, "first");
    assert_eq!(page[1].allocated_time, "2023-11-14 22:13:20");
}

#[test]
fn faults_fire_the_given_number_of_times() {
    let (s, _) = state();
    s.add_fault(Fault::error(
        Some("AllocateCustomerCredit"),
        "InternalError",
    ));
    assert_eq!(s.take_fault("CreateAndSendClientInvitationMail"), None);
    assert!(matches!(
        s.take_fault("AllocateCustomerCredit"),
        Some(FaultKind::Error { .. })
    ));
    assert_eq!(s.take_fault("AllocateCustomerCredit"), None);
}
