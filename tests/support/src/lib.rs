//! oc-test-support
