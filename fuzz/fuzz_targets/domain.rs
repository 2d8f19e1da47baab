//! The domain newtypes on any text: never a panic, and what parses keeps its promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partner_gateway::domain::{ClientUin, CreditAmount, Email, MaterialUrl, Remark};

const MAX_CENTS: i64 = 10_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(email) = Email::parse(text) {
        // Normalising is idempotent, the address fits Tencent's limit, and the masked form
        // keeps exactly the first character of the local part and the domain.
        let again = Email::parse(email.as_str()).expect("a normalised address parses");
        assert_eq!(again.as_str(), email.as_str());
        assert!(email.as_str().len() <= 254);
        let (local, domain) = email.as_str().rsplit_once('@').unwrap();
        let first: String = local.chars().take(1).collect();
        assert_eq!(email.masked(), format!("{first}***@{domain}"));
    }
    if let Ok(uin) = ClientUin::parse(text) {
        assert_eq!(ClientUin::parse(&uin.get().to_string()).unwrap(), uin);
    }
    if let Ok(amount) = CreditAmount::parse_json(text, MAX_CENTS) {
        assert!(amount.cents() != 0 && amount.cents().abs() <= MAX_CENTS);
        // The amount Tencent gets is the exact number of cents.
        assert_eq!((amount.as_f64() * 100.0).round() as i64, amount.cents());
    }
    if let Ok(remark) = Remark::parse(text) {
        assert!(remark.as_str().chars().count() <= 256);
        assert!(!remark.as_str().chars().any(char::is_control));
    }
    if let Ok(url) = MaterialUrl::parse(text) {
        assert!(url.as_str().len() <= 2048);
    }
});
