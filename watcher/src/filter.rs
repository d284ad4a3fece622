//! Which files are reported: include and exclude globs, an extension list, and the names
//! of files still being written under a temporary name (`EXCLUDE_DEFAULTS`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

/// File names that tools write to and then rename into place, or lock and swap files beside
/// a document: never content a consumer should see. Matched against the file name, so they
/// hold at any depth. `EXCLUDE_DEFAULTS=false` turns them off; README "Temporary files" lists
/// them for users.
pub const TEMPORARY_FILES: &[&str] = &[
    // Browsers and download managers: the download itself, renamed when complete.
    "*.part",
    "*.partial",
    "*.crdownload",
    "*.opdownload",
    "*.!qB",
    "*.!ut",
    "*.!bt",
    "*.aria2",
    // Editors: vim's swap files and the file it writes to test a directory, Emacs' lock and
    // auto-save files, backups.
    ".*.sw[a-p]",
    "4913",
    ".#*",
    "#*#",
    "*~",
    // Office and LibreOffice lock files.
    "~$*",
    ".~lock.*#",
    // Syncthing.
    ".syncthing.*.tmp",
    "~syncthing~*.tmp",
];

/// Directory names whose content is temporary: never walked, and nothing below them reported.
/// Safari downloads into a `.download` bundle; rsync `--delay-updates` stages in `.~tmp~`.
pub const TEMPORARY_DIRS: &[&str] = &["*.download", ".~tmp~"];

/// Whether `name` is rsync's temporary name for a file it is receiving: `.NAME.XXXXXX`, six
/// characters from mkstemp's `[A-Za-z0-9]`. A glob cannot say the rest of the rule, so it is
/// written out here: at least one capital or digit among the six, which a random suffix has
/// in all but 0.6 % of cases, while a hidden file named like `.notes.backup` is left alone.
fn is_rsync_temporary(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b".") else {
        return false;
    };
    let Some(dot) = rest.iter().rposition(|&b| b == b'.') else {
        return false;
    };
    let (stem, suffix) = (&rest[..dot], &rest[dot + 1..]);
    !stem.is_empty()
        && suffix.len() == 6
        && suffix.iter().all(u8::is_ascii_alphanumeric)
        && suffix
            .iter()
            .any(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A compiled filter. The default (all lists empty) accepts every regular file.
#[derive(Debug, Clone)]
pub struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    /// The directory paths EXCLUDE covers: each glob as given, and without a trailing `/**`.
    exclude_dirs: Option<GlobSet>,
    extensions: Vec<String>,
    /// `TEMPORARY_FILES` and `TEMPORARY_DIRS`, compiled, when `EXCLUDE_DEFAULTS` is on.
    temporary: Option<(GlobSet, GlobSet)>,
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
        let dirs: Vec<String> = exclude
            .iter()
            .map(|g| g.trim())
            .flat_map(|g| [Some(g), g.strip_suffix("/**")])
            .flatten()
            .map(str::to_owned)
            .collect();
        Ok(Self {
            include: build("INCLUDE", include)?,
            exclude: build("EXCLUDE", exclude)?,
            exclude_dirs: build("EXCLUDE", &dirs)?,
            temporary: None,
            extensions: extensions
                .iter()
                .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
        })
    }

    /// The same filter, leaving out temporary names too (`EXCLUDE_DEFAULTS`) when `on`.
    pub fn skipping_temporary(mut self, on: bool) -> Self {
        self.temporary = None;
        if on {
            let list = |l: &[&str]| l.iter().map(|g| (*g).to_owned()).collect::<Vec<_>>();
            // The lists are constants whose globs the tests compile; an error here would be a
            // bad edit of them, which the filter tests catch.
            if let (Ok(Some(files)), Ok(Some(dirs))) = (
                build("EXCLUDE_DEFAULTS", &list(TEMPORARY_FILES)),
                build("EXCLUDE_DEFAULTS", &list(TEMPORARY_DIRS)),
            ) {
                self.temporary = Some((files, dirs));
            }
        }
        self
    }

    /// Whether the directory at `rel` (relative to DATA_DIR) is walked: not a temporary
    /// directory, and not one EXCLUDE covers (such as `**/.partial/**`). DATA_DIR itself always
    /// is.
    pub fn walks(&self, rel: &Path) -> bool {
        if rel.as_os_str().is_empty() {
            return true;
        }
        if let Some(dirs) = &self.exclude_dirs {
            if dirs.is_match(rel) {
                return false;
            }
        }
        match (&self.temporary, rel.file_name()) {
            (Some((_, dirs)), Some(name)) => !dirs.is_match(name),
            _ => true,
        }
    }

    /// Whether `rel`'s name, or the name of a directory above it, is temporary.
    fn is_temporary(&self, rel: &Path) -> bool {
        let Some((files, dirs)) = &self.temporary else {
            return false;
        };
        // Split by bytes, not by `Path` components: this runs for every file of every scan.
        let bytes = rel.as_os_str().as_bytes();
        let (parents, name) = match bytes.iter().rposition(|&b| b == b'/') {
            Some(slash) => (&bytes[..slash], &bytes[slash + 1..]),
            None => (&b""[..], bytes),
        };
        files.is_match(OsStr::from_bytes(name))
            || is_rsync_temporary(name)
            || parents
                .split(|&b| b == b'/')
                .any(|d| !d.is_empty() && dirs.is_match(OsStr::from_bytes(d)))
    }

    /// Whether a file at `rel` (relative to DATA_DIR) is reported.
    pub fn accepts(&self, rel: &Path) -> bool {
        if self.is_temporary(rel) {
            return false;
        }
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
    fn temporary_names_are_left_out_at_any_depth_unless_turned_off() {
        let on = Filter::new(&[], &[], &[]).unwrap().skipping_temporary(true);
        let off = Filter::new(&[], &[], &[])
            .unwrap()
            .skipping_temporary(false);
        // (path, reported with the defaults on)
        let table = [
            ("x/song.flac.part", false),
            ("album.zip.partial", false),
            ("setup.iso.crdownload", false),
            ("a.opdownload", false),
            ("t/film.mkv.!qB", false),
            ("film.mkv.!ut", false),
            ("film.mkv.!bt", false),
            ("film.mkv.aria2", false),
            ("notes/.todo.txt.swp", false),
            (".todo.txt.swo", false),
            ("4913", false),
            (".#todo.txt", false),
            ("#todo.txt#", false),
            ("todo.txt~", false),
            ("~$report.docx", false),
            (".~lock.report.odt#", false),
            (".syncthing.song.flac.tmp", false),
            ("~syncthing~song.flac.tmp", false),
            ("a/.song.flac.Ab3xYz", false),
            (".song.flac.x9qkeb", false),
            ("Safari/film.mkv.download/film.mkv", false),
            ("a/.~tmp~/song.flac", false),
            // What only looks like one.
            ("song.flac", true),
            ("partial.flac", true),
            ("a.part.flac", true),
            ("download/film.mkv", true),
            (".notes.backup", true),
            (".hidden", true),
            (".Ab3xYz", true),
            ("4913.mp3", true),
            ("~song.flac", true),
        ];
        for (path, want) in table {
            assert_eq!(on.accepts(Path::new(path)), want, "{path}");
            assert!(off.accepts(Path::new(path)), "{path}, defaults off");
        }
    }

    #[test]
    fn excluded_and_temporary_directories_are_not_walked() {
        let on = Filter::new(&[], &s(&["**/.partial/**", "cache"]), &[])
            .unwrap()
            .skipping_temporary(true);
        let off = Filter::new(&[], &s(&["**/.partial/**"]), &[]).unwrap();
        // (directory, walked with the defaults on, walked with them off)
        let table = [
            ("", true, true),
            ("music", true, true),
            ("music/.partial", false, false),
            (".partial", false, false),
            ("cache", false, true),
            ("music/cache", true, true),
            ("Safari/film.mkv.download", false, true),
            ("a/.~tmp~", false, true),
            ("downloads", true, true),
        ];
        for (dir, with, without) in table {
            assert_eq!(on.walks(Path::new(dir)), with, "{dir}");
            assert_eq!(off.walks(Path::new(dir)), without, "{dir}, defaults off");
        }
    }

    #[test]
    fn bad_glob_names_its_setting() {
        let err = Filter::new(&[], &s(&["a[b"]), &[]).unwrap_err();
        assert_eq!(err.setting, "EXCLUDE");
    }
}
