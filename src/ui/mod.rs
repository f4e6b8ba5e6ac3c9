//! Everything the user sees: the one printer all output goes through, and the renderers that
//! turn plans and reports into lines. Renderers are pure (they return strings); only the printer
//! writes. Below the systems and the engine (which print through it), above `plan` (whose
//! values it renders).

pub mod preview;
pub mod printer;
pub mod progress;
pub mod status;
pub mod table;

pub use printer::{Printer, Style};
