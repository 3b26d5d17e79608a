//! A Monday webhook delivery body (`MondayDelivery::parse`): the challenge handshake, every
//! legacy `event.type`, with or without `triggerUuid`. Input: the raw body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use npd_monday_gateway::domain::event::MondayDelivery;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = MondayDelivery::parse(data) {
        // An error is fit for a problem detail: it renders, and never echoes a long payload.
        let _ = e.to_string();
    }
});
