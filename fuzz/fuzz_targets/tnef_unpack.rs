//! The winmail.dat reader alone: any bytes → files or an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psa_mail_agent::ticket::tnef;

fuzz_target!(|data: &[u8]| {
    if let Ok(unpacked) = tnef::unpack(data) {
        let total: usize = unpacked.files.iter().map(|f| f.data.len()).sum();
        assert!(total <= data.len());
    }
});
