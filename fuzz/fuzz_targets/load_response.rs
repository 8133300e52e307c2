#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sidewatch::fuzzing::load_response(data));
