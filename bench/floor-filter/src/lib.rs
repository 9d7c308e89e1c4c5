//! The benchmark floor for any body-inspecting proxy-wasm filter.
//!
//! Plugin configuration (a plain string):
//! - `hold` (default): return Pause from `on_http_request_headers` (needs Envoy's
//!   `allow_on_headers_stop_iteration: true`), Pause in `on_http_request_body` until
//!   `end_of_stream`, then Continue. No host calls besides the callbacks themselves: this is the
//!   unavoidable cost of holding a request in Wasm until its body is complete.
//! - `continue`: return Continue at once from every callback (the cost of merely being there,
//!   what an unprotected route should cost).
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { hold: true }) });
}}

struct Root {
    hold: bool,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let mode = proxy_wasm::hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.hold = match mode.trim_ascii() {
            b"" | b"hold" => true,
            b"continue" => false,
            _ => return false,
        };
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor { hold: self.hold }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Floor {
    hold: bool,
}

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.hold && !end_of_stream {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, _body_size: usize, end_of_stream: bool) -> Action {
        if self.hold && !end_of_stream {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}
