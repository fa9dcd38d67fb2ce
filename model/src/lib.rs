//! oc-model
