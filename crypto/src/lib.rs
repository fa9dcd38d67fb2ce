//! oc-crypto
