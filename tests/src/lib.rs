//! Workspace-level tests for pvh. The tests live in `tests/tests/`; this
//! library holds helpers they share.
