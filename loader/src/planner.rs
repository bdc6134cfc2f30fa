//! The layout planner (work in progress).

use crate::error::LoadError;
use crate::layout::GuestRam;
use crate::plan::{BootConfig, BootPlan};

/// Internal details the loader needs to write what the plan describes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Detail {}

/// Decides where everything goes.
pub fn plan(ram: &GuestRam, config: &BootConfig<'_>) -> Result<BootPlan, LoadError> {
    let _ = (ram, config);
    Err(LoadError::NoLoadSegments)
}
