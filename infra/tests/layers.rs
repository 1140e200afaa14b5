//! The layers test: storage is reached only through use cases. No source file
//! of a function names `repo::` (so handlers, the worker and the scheduled
//! functions call use cases in `shared`), and every route the functions declare
//! has a row in the README's layout table naming the handler that serves it,
//! the use case that handler calls (which must exist in `shared`) and the
//! storage modules behind it. Inside `shared`, storage modules are named by path
//! (`repo::orders::get`), never imported by bare name, so they never shadow the
//! use-case modules. A last test plants a violation of each kind in memory and
//! checks it is reported, so the checks cannot pass vacuously.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use infra::functions::HTTP_FUNCTIONS;

const HTTP_METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

/// Source files by their path from the repository root.
type Files = BTreeMap<String, String>;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("infra/ has a parent").to_owned()
}

/// Every `.rs` file under `dir`, by its path from `root`.
fn rust_files(root: &Path, dir: &Path, files: &mut Files) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("readable dir").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(root, &path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("readable source");
            let relative = path.strip_prefix(root).expect("under the root").to_string_lossy().replace('\\', "/");
            files.insert(relative, text);
        }
    }
}

/// Every source file of every function (`functions/*/src/**/*.rs`).
fn function_sources(root: &Path) -> Files {
    let mut files = Files::new();
    let mut functions: Vec<_> =
        std::fs::read_dir(root.join("functions")).expect("functions/").map(|e| e.expect("entry").path()).collect();
    functions.sort();
    for function in functions {
        let src = function.join("src");
        if src.is_dir() {
            rust_files(root, &src, &mut files);
        }
    }
    files
}

/// One line per place a function's source names the storage layer.
fn storage_uses(sources: &Files) -> Vec<String> {
    sources
        .iter()
        .flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, line)| line.contains("shared::repo") || line.contains("repo::"))
                .map(move |(n, line)| format!("{path}:{}: {}", n + 1, line.trim()))
        })
        .collect()
}

/// One line per `use` outside `shared/src/repo` that imports a storage module
/// by its bare name (`use crate::repo::orders;`, `use crate::repo::orders::{self, ..}`,
/// `use crate::repo::{orders, ..}`) instead of naming it by path after `use crate::repo;`.
fn storage_module_imports(sources: &Files) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in sources {
        if path.starts_with("shared/src/repo/") || path == "shared/src/repo.rs" {
            continue;
        }
        // `use` items may span lines: join each one up to its `;`.
        let mut statement = String::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if statement.is_empty() && !(line.starts_with("use ") || line.starts_with("pub use ")) {
                continue;
            }
            statement.push_str(line);
            if !line.ends_with(';') {
                continue;
            }
            let item = std::mem::take(&mut statement);
            let Some(rest) = item.split_once("crate::repo::").map(|(_, rest)| rest) else { continue };
            let names_module = match rest.split_once("::") {
                // `use crate::repo::{a, b};` lists modules (or `self`).
                None if rest.starts_with('{') => true,
                // `use crate::repo::orders;` imports the module itself, unless it is
                // one of `repo`'s own items (`scan_all`, `decoded`).
                None => {
                    rest.trim_end_matches(';').chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        && !["scan_all;", "decoded;"].contains(&rest)
                }
                // `use crate::repo::orders::{self, ..};`
                Some((_, items)) => items.split([',', '{', '}', ' ', ';']).any(|name| name == "self"),
            };
            if names_module {
                found.push(format!("{path}:{}: {item}", n + 1));
            }
        }
    }
    found
}

/// Every route the HTTP functions declare, as (`METHOD /path`, function).
fn declared_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for function in HTTP_FUNCTIONS {
        let doc = serde_json::to_value((function.routes)().into_openapi()).expect("a document serializes");
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for method in HTTP_METHODS {
                if item.get(*method).is_some() {
                    routes.insert((format!("{} {path}", method.to_ascii_uppercase()), function.binary.to_owned()));
                }
            }
        }
    }
    routes
}

/// One row of the layout table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    route: String,
    handler: String,
    function: String,
    /// `(module, fn)` of `shared::<module>::<fn>`.
    use_case: (String, String),
    /// The modules of `shared::repo::<module>`.
    repos: Vec<String>,
}

/// The `## Layout` section of the README.
fn layout_section(readme: &str) -> &str {
    let start = readme.find("\n## Layout\n").expect("the README has a Layout section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 4);
    &rest[..end]
}

/// The route rows of the layout table (those whose first cell is a
/// backquoted `METHOD /path`), or a problem per malformed row.
fn table_rows(section: &str) -> Result<Vec<Row>, Vec<String>> {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let route = cells[0].trim_matches('`').to_owned();
        if !HTTP_METHODS.iter().any(|m| route.starts_with(&format!("{} /", m.to_ascii_uppercase()))) {
            continue;
        }
        let parsed = (|| {
            let [_, handler, use_case, repos] = cells[..] else { return None };
            let (handler, function) = handler.split_once(" (functions/")?;
            let handler = handler.trim_matches('`').to_owned();
            let function = function.strip_suffix(')')?.to_owned();
            let use_case = use_case.trim_matches('`').strip_prefix("shared::")?;
            let (module, name) = use_case.split_once("::")?;
            let repos = repos
                .split(',')
                .filter_map(|cell| cell.trim().trim_matches('`').strip_prefix("shared::repo::"))
                .map(str::to_owned)
                .collect();
            Some(Row { route: route.clone(), handler, function, use_case: (module.into(), name.into()), repos })
        })();
        match parsed {
            Some(row) => rows.push(row),
            None => problems.push(format!("malformed layout row: {line}")),
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// The body of `async fn name` in `text`, up to the next item.
fn fn_body<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(&format!("async fn {name}("))?;
    let rest = &text[start..];
    let end = rest.find("\n}\n").map_or(rest.len(), |i| i + 3);
    Some(&rest[..end])
}

/// The handler `#[utoipa::path(method, path = "...")]` annotates in `text`.
fn handler_of(text: &str, route: &str) -> Option<String> {
    let (method, path) = route.split_once(' ')?;
    let start = text.find(&format!("#[utoipa::path({}, path = \"{path}\"", method.to_ascii_lowercase()))?;
    let rest = &text[start..];
    let name = &rest[rest.find("async fn ")? + "async fn ".len()..];
    Some(name[..name.find('(')?].to_owned())
}

/// One line per route without exactly one truthful row, and per row without a
/// route. `read` gives a file's text by its path from the repository root.
fn layout_problems(
    routes: &BTreeSet<(String, String)>,
    readme: &str,
    read: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let rows = match table_rows(layout_section(readme)) {
        Ok(rows) => rows,
        Err(problems) => return problems,
    };
    let mut problems = Vec::new();
    for (route, function) in routes {
        let found: Vec<&Row> = rows.iter().filter(|r| &r.route == route).collect();
        let [row] = found[..] else {
            problems.push(format!("{route} ({function}): {} rows in the README's layout table, not one", found.len()));
            continue;
        };
        if &row.function != function {
            problems.push(format!("{route}: the table names functions/{}, the route is {function}'s", row.function));
            continue;
        }
        let lib = read(&format!("functions/{function}/src/lib.rs")).unwrap_or_default();
        match handler_of(&lib, route) {
            Some(handler) if handler == row.handler => {}
            other => {
                problems.push(format!("{route}: the table names handler `{}`, the route's is {other:?}", row.handler))
            }
        }
        let (module, name) = &row.use_case;
        let shared = read(&format!("shared/src/{module}.rs")).unwrap_or_default();
        if !shared.contains(&format!("pub async fn {name}(")) {
            problems.push(format!("{route}: no `pub async fn {name}` in shared/src/{module}.rs"));
        }
        let calls = fn_body(&lib, &row.handler).is_some_and(|body| body.contains(&format!("{module}::{name}(")));
        if !calls {
            problems.push(format!("{route}: handler `{}` does not call {module}::{name}", row.handler));
        }
        for repo in &row.repos {
            if read(&format!("shared/src/repo/{repo}.rs")).is_none() {
                problems.push(format!("{route}: no storage module shared::repo::{repo}"));
            }
        }
    }
    for row in &rows {
        if !routes.iter().any(|(route, _)| route == &row.route) {
            problems.push(format!("{}: in the README's layout table but no function declares it", row.route));
        }
    }
    problems
}

fn read_from_disk(path: &str) -> Option<String> {
    std::fs::read_to_string(repo_root().join(path)).ok()
}

#[test]
fn functions_reach_storage_only_through_use_cases() {
    let sources = function_sources(&repo_root());
    assert!(sources.keys().any(|p| p == "functions/worker/src/lib.rs"), "read the functions' sources");
    let uses = storage_uses(&sources);
    assert!(
        uses.is_empty(),
        "functions name the storage layer; call a use case in shared instead:\n{}",
        uses.join("\n")
    );
}

#[test]
fn shared_names_storage_modules_by_path() {
    let root = repo_root();
    let mut sources = Files::new();
    rust_files(&root, &root.join("shared/src"), &mut sources);
    assert!(sources.contains_key("shared/src/orders.rs"), "read shared's sources");
    let imports = storage_module_imports(&sources);
    assert!(
        imports.is_empty(),
        "storage modules imported by bare name; `use crate::repo;` and name them `repo::<module>::`:\n{}",
        imports.join("\n")
    );
}

#[test]
fn every_route_has_a_layout_row_naming_its_handler_and_use_case() {
    let routes = declared_routes();
    assert!(routes.len() > 30, "read the functions' routes: {routes:?}");
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let problems = layout_problems(&routes, &readme, &read_from_disk);
    assert!(problems.is_empty(), "the README's layout table and the routes disagree:\n{}", problems.join("\n"));
}

#[test]
fn planted_violations_are_reported() {
    // A handler that reaches for storage.
    let mut sources = Files::new();
    sources.insert("functions/x/src/lib.rs".into(), "use shared::catalogue;\nuse shared::repo::products;\n".into());
    sources.insert("functions/x/src/more.rs".into(), "let n = shared::repo::sales::range(store).await?;\n".into());
    let uses = storage_uses(&sources);
    assert_eq!(uses.len(), 2, "{uses:?}");
    assert!(uses[0].starts_with("functions/x/src/lib.rs:2:"), "{uses:?}");

    // Storage modules imported by bare name inside shared; types and `repo` itself are fine.
    let mut sources = Files::new();
    sources.insert(
        "shared/src/orders.rs".into(),
        "use crate::repo;\nuse crate::repo::orders::{Checkout, Listing};\nuse crate::repo::scan_all;\nuse crate::repo::orders::{self, Checkout};\nuse crate::repo::sales;\nuse crate::repo::{\n    farmers, users,\n};\n".into(),
    );
    sources.insert("shared/src/repo/orders.rs".into(), "use super::{self, farmers};\nuse crate::repo::users;\n".into());
    let imports = storage_module_imports(&sources);
    assert_eq!(imports.len(), 3, "{imports:?}");
    assert!(imports[0].starts_with("shared/src/orders.rs:4:"), "{imports:?}");
    assert!(imports[2].starts_with("shared/src/orders.rs:8:"), "{imports:?}");

    // A table and a function that agree, then each kind of disagreement.
    let files: BTreeMap<&str, &str> = BTreeMap::from([
        (
            "functions/things/src/lib.rs",
            "#[utoipa::path(get, path = \"/things\", tag = \"things\")]\nasync fn list(state: S) -> R {\n    let page = catalogue::list_things(&state).await?;\n}\n",
        ),
        ("shared/src/catalogue.rs", "pub async fn list_things(state: &AppState) -> Result<()> {}\n"),
        ("shared/src/repo/things.rs", "//! Things.\n"),
    ]);
    let read = |path: &str| files.get(path).map(|text| text.to_string());
    let routes = BTreeSet::from([("GET /things".to_owned(), "things".to_owned())]);
    let table = |row: &str| {
        format!("# Title\n\n## Layout\n\n| route | handler | use case | repo |\n|---|---|---|---|\n{row}\n\n## Next\n\n| `POST /things` | stray |\n")
    };
    let good =
        "| `GET /things` | `list` (functions/things) | `shared::catalogue::list_things` | `shared::repo::things` |";
    assert_eq!(layout_problems(&routes, &table(good), &read), Vec::<String>::new());

    let planted = [
        ("", "0 rows"),
        (&good.replace("`list`", "`browse`"), "the table names handler `browse`"),
        (&good.replace("list_things`", "browse_things`"), "no `pub async fn browse_things`"),
        (&good.replace("functions/things", "functions/stuff"), "names functions/stuff"),
        (&good.replace("repo::things", "repo::gone"), "no storage module shared::repo::gone"),
        (&format!("{good}\n{good}"), "2 rows"),
        (&format!("{good}\n{}", good.replace("GET /things", "DELETE /things")), "no function declares it"),
        ("| `GET /things` | list |", "malformed layout row"),
    ];
    for (row, expected) in planted {
        let problems = layout_problems(&routes, &table(row), &read);
        assert!(problems.iter().any(|p| p.contains(expected)), "{expected:?} not reported for {row:?}: {problems:?}");
    }

    // A handler that calls another use case than its row names.
    let mut files = files.clone();
    files.insert(
        "functions/things/src/lib.rs",
        "#[utoipa::path(get, path = \"/things\")]\nasync fn list(state: S) -> R {\n    let page = things::list(&state).await?;\n}\n",
    );
    let read = |path: &str| files.get(path).map(|text| text.to_string());
    let problems = layout_problems(&routes, &table(good), &read);
    assert!(problems.iter().any(|p| p.contains("does not call catalogue::list_things")), "{problems:?}");
}
