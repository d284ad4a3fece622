//! Which files are reported: include and exclude globs, and an extension list.

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

/// A compiled filter. The default (all lists empty) accepts every regular file.
#[derive(Debug, Clone)]
pub struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    extensions: Vec<String>,
}

/// A glob that does not compile.
#[derive(Debug)]
pub struct FilterError {
    /// INCLUDE or EXCLUDE.
    pub setting: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn build(setting: &'static str, globs: &[String]) -> Result<Option<GlobSet>, FilterError> {
    let globs: Vec<_> = globs
        .iter()
        .map(|g| g.trim())
        .filter(|g| !g.is_empty())
        .collect();
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = Glob::new(g).map_err(|e| FilterError {
            setting,
            problem: format!("glob {g:?}: {e}"),
        })?;
        b.add(glob);
    }
    b.build().map(Some).map_err(|e| FilterError {
        setting,
        problem: e.to_string(),
    })
}

impl Filter {
    /// Compiles the lists.
    ///
    /// # Errors
    /// A [`FilterError`] naming the setting with the bad glob.
    pub fn new(
        include: &[String],
        exclude: &[String],
        extensions: &[String],
    ) -> Result<Self, FilterError> {
        Ok(Self {
            include: build("INCLUDE", include)?,
            exclude: build("EXCLUDE", exclude)?,
            extensions: extensions
                .iter()
                .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
        })
    }

    /// Whether a file at `rel` (relative to DATA_DIR) is reported.
    pub fn accepts(&self, rel: &Path) -> bool {
        if let Some(ex) = &self.exclude {
            if ex.is_match(rel) {
                return false;
            }
        }
        if let Some(inc) = &self.include {
            if !inc.is_match(rel) {
                return false;
            }
        }
        if !self.extensions.is_empty() {
            let ext = rel
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            return self.extensions.contains(&ext);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// include, exclude, extensions, path, accepted?
    type Case = (
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
        bool,
    );

    #[test]
    fn cases() {
        let table: &[Case] = &[
            (&[], &[], &[], "any/thing.bin", true),
            (&[], &[], &["mp3", ".FLAC"], "a/b.flac", true),
            (&[], &[], &["mp3"], "a/b.MP3", true),
            (&[], &[], &["mp3"], "a/b.wav", false),
            (&[], &[], &["mp3"], "noext", false),
            (&["music/**"], &[], &[], "music/a/b.mp3", true),
            (&["music/**"], &[], &[], "video/a.mkv", false),
            (&[], &["**/*.part", "*.tmp"], &[], "x/y.part", false),
            (&[], &["**/*.part", "*.tmp"], &[], "y.tmp", false),
            (&[], &["**/*.part"], &[], "y.mp3", true),
        ];
        for (inc, exc, ext, path, want) in table {
            let f = Filter::new(&s(inc), &s(exc), &s(ext)).unwrap();
            assert_eq!(
                f.accepts(Path::new(path)),
                *want,
                "{inc:?} {exc:?} {ext:?} {path}"
            );
        }
    }

    #[test]
    fn bad_glob_names_its_setting() {
        let err = Filter::new(&[], &s(&["a[b"]), &[]).unwrap_err();
        assert_eq!(err.setting, "EXCLUDE");
    }
}
