//! Everything the user sees: the one printer all output goes through, and the renderers that
//! turn reports into lines. Renderers are pure (they return strings); only the printer writes.

pub mod preview;
pub mod printer;
pub mod progress;
pub mod status;
pub mod table;

pub use printer::{Printer, Style};
