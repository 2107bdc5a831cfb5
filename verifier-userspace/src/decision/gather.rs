//! Gathering [`super::Evidence`] for one alert from the provenance store, the package index and the
//! file system.
