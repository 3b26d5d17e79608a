//! An NPD event body (`NpdEvent::parse`): `type`, `data` as a contact or organization record,
//! versions and timestamps. Input: the raw body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use npd_monday_gateway::domain::event::NpdEvent;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = NpdEvent::parse(data) {
        let _ = e.to_string();
    }
});
