//! Export jobs recorded as `<root>/<id>/_job.json` (a name Hive-style readers skip), beside the job's files: written to a
//! temporary name and renamed, so a crash leaves the previous record or the new one whole.

use std::fs;
use std::path::{Path, PathBuf};

use oc_model::export::{ExportJob, ExportJobs, JobStatus, io_error};
use oc_model::{DomainError, DomainResult};

const RECORD: &str = "_job.json";

#[derive(Debug, Clone)]
pub struct DirJobs {
    root: PathBuf,
}

impl DirJobs {
    pub fn new(root: impl Into<PathBuf>) -> DomainResult<DirJobs> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| io_error(&format!("dir {}", root.display()), e))?;
        Ok(DirJobs { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Job ids are ours (UUIDs); anything else names no job (and no path outside the root).
    fn valid(id: &str) -> bool {
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    }
}

impl ExportJobs for DirJobs {
    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn save(&self, job: &ExportJob) -> DomainResult<()> {
        if !Self::valid(&job.id) {
            return Err(DomainError::internal(format!(
                "bad export job id {:?}",
                job.id
            )));
        }
        let dir = self.dir(&job.id);
        fs::create_dir_all(&dir).map_err(|e| io_error("job dir", e))?;
        let json = serde_json::to_vec_pretty(job).map_err(|e| io_error("job record", e))?;
        let temporary = dir.join("._job.json.inprogress");
        fs::write(&temporary, json).map_err(|e| io_error("job record", e))?;
        fs::rename(&temporary, dir.join(RECORD)).map_err(|e| io_error("job record", e))
    }

    fn load(&self, id: &str) -> DomainResult<Option<ExportJob>> {
        if !Self::valid(id) {
            return Ok(None);
        }
        match fs::read(self.dir(id).join(RECORD)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io_error("job record", e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("job record", e)),
        }
    }

    fn running(&self) -> DomainResult<Vec<ExportJob>> {
        let mut running = Vec::new();
        let entries = fs::read_dir(&self.root).map_err(|e| io_error("jobs dir", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("jobs dir", e))?;
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some(job) = self.load(&id)?
                && job.status == JobStatus::Running
            {
                running.push(job);
            }
        }
        Ok(running)
    }
}
