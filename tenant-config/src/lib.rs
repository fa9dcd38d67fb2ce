//! oc-tenant-config
