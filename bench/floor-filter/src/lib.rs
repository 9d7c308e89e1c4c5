//! The benchmark floor for any body-inspecting proxy-wasm filter.
//!
//! Plugin configuration (a plain string):
//! - `hold` (default): return Pause from `on_http_request_headers` (needs Envoy's
//!   `allow_on_headers_stop_iteration: true`), Pause in `on_http_request_body` until
//!   `end_of_stream`, then Continue. No host calls besides the callbacks themselves: this is the
//!   unavoidable cost of holding a request in Wasm until its body is complete.
//! - `continue`: return Continue at once from every callback (the cost of merely being there,
//!   what an unprotected route should cost).
//! - `map`: read the whole request header map (one `proxy_get_header_map_pairs`), then
//!   continue: the cost of looking at the request's headers at all.
//! - `calls`: `hold`, plus the host calls any verifying filter makes and nothing else: the header
//!   map when the headers arrive; at the end of the body the body buffer, one request header
//!   set and one counter incremented. What is above this row is the filter's own Wasm work.
//! - `md5`: `calls`, plus one MD5 over the body and a secret (no parsing): the least any filter
//!   checking an MD5 signature over the body pays in Wasm on this ABI.
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { mode: Mode::Hold, counter: 0 })
    });
}}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Hold,
    Continue,
    Map,
    Calls,
    Md5,
}

struct Root {
    mode: Mode,
    counter: u32,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let mode = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.mode = match mode.trim_ascii() {
            b"" | b"hold" => Mode::Hold,
            b"continue" => Mode::Continue,
            b"map" => Mode::Map,
            b"calls" => Mode::Calls,
            b"md5" => Mode::Md5,
            _ => return false,
        };
        if self.mode.calls() {
            match hostcalls::define_metric(MetricType::Counter, "floor_calls.verified") {
                Ok(id) => self.counter = id,
                Err(_) => return false,
            }
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor {
            mode: self.mode,
            counter: self.counter,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Floor {
    mode: Mode,
    counter: u32,
}

impl Context for Floor {}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> proxy_wasm::types::Status;
}

/// The serialized header map, taken as the guard takes it (one host call; the host allocates
/// the buffer through `proxy_on_memory_allocate`), not decoded.
fn read_map() -> usize {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a buffer it allocated in this module (a `Vec<u8>` of capacity
    // `size`, the SDK's allocator), which this call then owns and frees.
    unsafe {
        if proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size)
            != proxy_wasm::types::Status::Ok
            || data.is_null()
        {
            return 0;
        }
        let map = Vec::from_raw_parts(data, size, size);
        map.len()
    }
}

impl Mode {
    /// Holds the request until the end of its body.
    fn holds(self) -> bool {
        matches!(self, Mode::Hold | Mode::Calls | Mode::Md5)
    }

    /// Makes a verifier's host calls.
    fn calls(self) -> bool {
        matches!(self, Mode::Calls | Mode::Md5)
    }
}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.mode == Mode::Map || self.mode.calls() {
            std::hint::black_box(read_map());
        }
        if self.mode.holds() && !end_of_stream {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.mode.holds() && !end_of_stream {
            return Action::Pause;
        }
        if self.mode.calls() {
            let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default();
            if self.mode == Mode::Md5 {
                use md5::Digest;
                let mut h = md5::Md5::new();
                h.update(&body);
                h.update(b"bench-secret-0123=xyz");
                std::hint::black_box(h.finalize());
            }
            std::hint::black_box(body.len());
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                "x-lf-verified",
                Some("md5; key=demo"),
            );
            let _ = hostcalls::increment_metric(self.counter, 1);
        }
        Action::Continue
    }
}
