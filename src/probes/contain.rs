//! Keeps a panicking probe run from taking its caller down. The run goes on
//! a task of its own, and its panic message is captured rather than printed
//! by the default hook: it may quote the service's data, so it must reach the
//! log through the redactor like any other failure detail.

use std::cell::RefCell;
use std::future::Future;
use std::sync::{Arc, Mutex, Once, PoisonError};

type Slot = Arc<Mutex<Option<String>>>;

thread_local! {
    /// Where a panic on this thread goes while a contained future is polled.
    static CAPTURE: RefCell<Option<Slot>> = const { RefCell::new(None) };
}

/// Runs `fut` on its own task. `Err` says how it ended instead: the panic's
/// location and message on one line.
pub(crate) async fn contained<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    install_hook();
    let slot = Slot::default();
    let task_slot = slot.clone();
    let mut fut = Box::pin(fut);
    let task = tokio::spawn(std::future::poll_fn(move |cx| {
        let _capturing = Capturing::start(&task_slot);
        fut.as_mut().poll(cx)
    }));
    task.await.map_err(|e| {
        let captured = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        match captured {
            Some(text) => text.replace('\n', " "),
            None if e.is_panic() => "panicked".into(),
            None => "was cancelled".into(),
        }
    })
}

/// Routes this thread's panics to a slot until dropped (also when unwinding).
struct Capturing(Option<Slot>);

impl Capturing {
    fn start(slot: &Slot) -> Capturing {
        Capturing(CAPTURE.with(|c| c.replace(Some(slot.clone()))))
    }
}

impl Drop for Capturing {
    fn drop(&mut self) {
        let previous = self.0.take();
        CAPTURE.with(|c| *c.borrow_mut() = previous);
    }
}

/// Chains to the hook that was installed before for every other panic.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let slot = CAPTURE.try_with(|c| c.borrow().clone()).ok().flatten();
            match slot {
                Some(slot) => {
                    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(info.to_string())
                }
                None => previous(info),
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_returned_with_its_location() {
        let err = contained(async { panic!("boom {}", 7) }).await.unwrap_err();
        assert!(
            err.starts_with("panicked at src/probes/contain.rs:"),
            "{err}"
        );
        assert!(err.ends_with(": boom 7"), "{err}");
        assert_eq!(contained(async { 5 }).await, Ok(5));
    }
}
