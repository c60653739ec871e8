//! `foresight recipe`: the Slurm script is valid bash, asks Slurm for what
//! was given, and runs `foresight tune` with the right words (run here with
//! stand-ins for `srun` and `foresight`); the Kubernetes Job parses as YAML
//! and has the fields that make it work. The module is compiled in from the
//! command line's source, so these tests call `render` directly.

#[path = "../src/recipe.rs"]
mod recipe;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use recipe::{Kind, RecipeArgs, render};
use serde_yaml::Value;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("foresight-recipe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A recipe's arguments with the defaults `foresight recipe` has.
fn args(kind: Kind, study: &str) -> RecipeArgs {
    RecipeArgs {
        kind,
        study_file: "examples/command/study.toml".into(),
        study: study.into(),
        workers: recipe::DEFAULT_WORKERS,
        gpus_per_worker: 0,
        dir: None,
        time: recipe::DEFAULT_TIME.into(),
        partition: None,
        cpus_per_task: recipe::DEFAULT_CPUS_PER_TASK,
        image: (kind == Kind::Kubernetes).then(|| "registry.example/train:1".into()),
        secret: recipe::DEFAULT_SECRET.into(),
        config_map: recipe::DEFAULT_CONFIG_MAP.into(),
    }
}

/// `RecipeArgs` as the command line parses them.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: RecipeArgs,
}

fn parse(words: &[&str]) -> Result<RecipeArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("recipe").chain(words.iter().copied())).map(|c| c.args)
}

fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn line_starting<'a>(text: &'a str, start: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(start))
}

#[test]
fn slurm_script_is_bash_and_asks_for_what_was_given() {
    let mut a = args(Kind::Slurm, "lr sweep");
    a.workers = 6;
    a.gpus_per_worker = 2;
    a.partition = Some("gpu".into());
    a.time = "1-12:00:00".into();
    let text = render(&a).unwrap();
    let dir = temp_dir("syntax");
    let script = dir.join("job.sh");
    std::fs::write(&script, &text).unwrap();
    let out = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("#!/bin/bash\n"));
    for line in [
        "#SBATCH --array=0-5",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=1-12:00:00",
        "#SBATCH --cpus-per-task=2",
        // No space in a #SBATCH line, which is not shell.
        "#SBATCH --job-name=lr-sweep",
        "#SBATCH --output=%x-%A_%a.out",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
    assert_eq!(
        line_starting(&text, "srun "),
        Some(
            "srun foresight tune examples/command/study.toml --study 'lr sweep' --workers 1 --dir 'runs/lr sweep'"
        )
    );
    // sbatch reads #SBATCH lines only before the first command.
    let lines: Vec<&str> = text.lines().collect();
    let first_command = lines
        .iter()
        .position(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap();
    let last_sbatch = lines
        .iter()
        .rposition(|l| l.starts_with("#SBATCH"))
        .unwrap();
    assert!(last_sbatch < first_command, "{text}");
    // Slurm's CUDA_VISIBLE_DEVICES is left to the trial: no command passes
    // --gpus.
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with('#') || !l.contains("--gpus")),
        "{text}"
    );
    assert!(text.contains("export FORESIGHT_STORAGE=postgres://"));
    assert!(text.lines().any(|l| l == "#   sbatch job.sh"));
    assert!(text.contains(
        "#   foresight recipe slurm --study-file examples/command/study.toml --study \
         'lr sweep' --workers 6 --gpus-per-worker 2 --time 1-12:00:00 --partition gpu > job.sh"
    ));
}

#[test]
fn slurm_script_runs_foresight_tune_with_the_storage_from_the_environment() {
    let dir = temp_dir("run");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // srun runs its command; foresight writes down its words and the storage.
    write_exec(&bin.join("srun"), "#!/bin/sh\nexec \"$@\"\n");
    write_exec(
        &bin.join("foresight"),
        "#!/bin/sh\nprintf '%s\\n' \"$FORESIGHT_STORAGE\" \"$SRUN_CPUS_PER_TASK\" \"$@\" > \"$WORDS\"\n",
    );
    let mut a = args(Kind::Slurm, "it's");
    a.dir = Some("/shared/runs dir".into());
    let script = dir.join("job.sh");
    std::fs::write(&script, render(&a).unwrap()).unwrap();
    let words = dir.join("words");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |storage: Option<&str>| {
        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .current_dir(&dir)
            .env("PATH", &path)
            .env("WORDS", &words)
            .env("SLURM_CPUS_PER_TASK", "2")
            .env_remove("FORESIGHT_STORAGE");
        if let Some(s) = storage {
            cmd.env("FORESIGHT_STORAGE", s);
        }
        cmd.output().unwrap()
    };

    let out = run(None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FORESIGHT_STORAGE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!words.exists(), "foresight ran without a storage");

    let out = run(Some("postgres://u@db.example/studies"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read_to_string(&words).unwrap();
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "postgres://u@db.example/studies",
            "2",
            "tune",
            "examples/command/study.toml",
            "--study",
            "it's",
            "--workers",
            "1",
            "--dir",
            "/shared/runs dir",
        ]
    );
}

#[test]
fn slurm_without_gpus_asks_for_none() {
    let text = render(&args(Kind::Slurm, "s")).unwrap();
    assert!(!text.contains("--gres"), "{text}");
    assert!(!text.contains("--partition"), "{text}");
    assert!(text.lines().any(|l| l == "#SBATCH --array=0-3"));
    assert!(text.lines().any(|l| l == "#SBATCH --time=04:00:00"));
    assert_eq!(
        line_starting(&text, "srun "),
        Some("srun foresight tune examples/command/study.toml --study s --workers 1 --dir runs/s")
    );
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect()
}

#[test]
fn kubernetes_job_has_what_makes_it_work() {
    let mut a = args(Kind::Kubernetes, "cnn");
    a.workers = 8;
    a.gpus_per_worker = 1;
    let text = render(&a).unwrap();
    let job = yaml(&text);
    assert_eq!(job["apiVersion"].as_str(), Some("batch/v1"));
    assert_eq!(job["kind"].as_str(), Some("Job"));
    assert_eq!(job["metadata"]["name"].as_str(), Some("cnn"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    assert_eq!(spec["completions"].as_u64(), Some(8));
    assert_eq!(spec["parallelism"].as_u64(), Some(8));
    assert_eq!(spec["backoffLimit"].as_u64(), Some(8));
    assert_eq!(
        spec["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["type"].as_str(),
        Some("DisruptionTarget")
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["image"].as_str(), Some("registry.example/train:1"));
    assert_eq!(
        strings(&c["command"]),
        [
            "foresight",
            "tune",
            "/study/study.toml",
            "--study",
            "cnn",
            "--workers",
            "1",
            "--dir",
            "/study-runs/cnn",
            "--gpus",
            "0",
        ]
    );
    let env = c["env"].as_sequence().unwrap();
    assert_eq!(env.len(), 1);
    assert_eq!(env[0]["name"].as_str(), Some("FORESIGHT_STORAGE"));
    let key = &env[0]["valueFrom"]["secretKeyRef"];
    assert_eq!(key["name"].as_str(), Some("foresight-storage"));
    assert_eq!(key["key"].as_str(), Some("url"));
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"].as_u64(), Some(1));
    // The study file from the ConfigMap at /study, the runs on their volume.
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let mount = |name: &str| {
        mounts
            .iter()
            .find(|m| m["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no mount {name}"))
    };
    assert_eq!(mount("study")["mountPath"].as_str(), Some("/study"));
    assert_eq!(mount("study")["readOnly"].as_bool(), Some(true));
    assert_eq!(mount("runs")["mountPath"].as_str(), Some("/study-runs/cnn"));
    let volumes = pod["volumes"].as_sequence().unwrap();
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    assert_eq!(
        volume("study")["configMap"]["name"].as_str(),
        Some("foresight-study")
    );
    assert!(volume("runs")["emptyDir"].is_mapping());
    // How to make the Secret and the ConfigMap, and to apply it.
    for line in [
        "#   kubectl create secret generic foresight-storage --from-literal=url=\"$FORESIGHT_STORAGE\"",
        "#   kubectl create configmap foresight-study --from-file=examples/command/study.toml",
        "#   foresight recipe kubernetes --study-file examples/command/study.toml --study cnn --workers 8 --gpus-per-worker 1 --image registry.example/train:1 | kubectl apply -f -",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
}

#[test]
fn kubernetes_gpus_and_names() {
    // No GPU: no limit, no --gpus.
    let mut a = args(Kind::Kubernetes, "cnn");
    a.secret = "db-url".into();
    a.config_map = "studies.v2".into();
    let job = yaml(&render(&a).unwrap());
    let pod = &job["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert!(c.get("resources").is_none());
    assert!(!strings(&c["command"]).contains(&"--gpus"));
    assert_eq!(
        c["env"][0]["valueFrom"]["secretKeyRef"]["name"].as_str(),
        Some("db-url")
    );
    assert_eq!(
        pod["volumes"][0]["configMap"]["name"].as_str(),
        Some("studies.v2")
    );

    // Several GPUs: the limit, and every one visible to the trial.
    a.gpus_per_worker = 4;
    let job = yaml(&render(&a).unwrap());
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"].as_u64(), Some(4));
    assert!(!strings(&c["command"]).contains(&"--gpus"));

    // A study name that is no Kubernetes name names the Job after itself,
    // and says so; the study keeps its name.
    let a = args(Kind::Kubernetes, "LR_Sweep.v2 (final)");
    let text = render(&a).unwrap();
    assert!(
        text.contains("# The Job is named lr-sweep-v2-final:"),
        "{text}"
    );
    let job = yaml(&text);
    assert_eq!(job["metadata"]["name"].as_str(), Some("lr-sweep-v2-final"));
    let command = strings(&job["spec"]["template"]["spec"]["containers"][0]["command"]);
    assert_eq!(command[4], "LR_Sweep.v2 (final)");
    assert_eq!(command[8], "/study-runs/lr-sweep-v2-final");

    // A name YAML would read as a number stays a string.
    let job = yaml(&render(&args(Kind::Kubernetes, "2024")).unwrap());
    assert_eq!(job["metadata"]["name"].as_str(), Some("2024"));
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["command"][4].as_str(),
        Some("2024")
    );

    // A long name is cut to leave room for the pods' index.
    let long = "a".repeat(80);
    let job = yaml(&render(&args(Kind::Kubernetes, &long)).unwrap());
    let name = job["metadata"]["name"].as_str().unwrap();
    assert_eq!(name.len(), 52);

    // A given --dir is where the runs' volume goes.
    let mut a = args(Kind::Kubernetes, "cnn");
    a.dir = Some("/data/runs/cnn".into());
    let job = yaml(&render(&a).unwrap());
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(strings(&c["command"])[8], "/data/runs/cnn");
    assert_eq!(
        c["volumeMounts"][1]["mountPath"].as_str(),
        Some("/data/runs/cnn")
    );
}

#[test]
fn bad_input_is_refused() {
    let refused = |a: RecipeArgs, needle: &str| match render(&a) {
        Ok(text) => panic!("rendered, expected `{needle}`:\n{text}"),
        Err(e) => assert!(e.to_string().contains(needle), "{e}"),
    };
    for kind in [Kind::Slurm, Kind::Kubernetes] {
        let mut a = args(kind, "s");
        a.workers = 0;
        refused(a, "--workers");
        refused(args(kind, ""), "--study");
        refused(args(kind, "-s"), "starts with `-`");
        refused(args(kind, "two\nlines"), "control character");
    }
    let mut a = args(Kind::Kubernetes, "s");
    a.image = None;
    refused(a, "--image");
    let mut a = args(Kind::Kubernetes, "s");
    a.image = Some("an image".into());
    refused(a, "--image");
    refused(args(Kind::Kubernetes, "__"), "no letter or digit");
    for dir in ["runs/s", "/study/runs", "/", "/data/../etc"] {
        let mut a = args(Kind::Kubernetes, "s");
        a.dir = Some(dir.into());
        refused(a, "--dir");
    }
    let mut a = args(Kind::Kubernetes, "s");
    a.secret = "Storage".into();
    refused(a, "--secret");
    let mut a = args(Kind::Kubernetes, "s");
    a.config_map = "-x".into();
    refused(a, "--config-map");
    let mut a = args(Kind::Kubernetes, "s");
    a.study_file = "my study.toml".into();
    refused(a, "ConfigMap key");
    for time in ["4h", "1:2:3:4", "", "-1", "1-"] {
        let mut a = args(Kind::Slurm, "s");
        a.time = time.into();
        refused(a, "--time");
    }
    let mut a = args(Kind::Slurm, "s");
    a.partition = Some("gpu; rm -rf".into());
    refused(a, "--partition");
    let mut a = args(Kind::Slurm, "s");
    a.cpus_per_task = 0;
    refused(a, "--cpus-per-task");
}

#[test]
fn command_line_defaults_and_requirements() {
    let a = parse(&["slurm", "--study-file", "study.toml", "--study", "s"]).unwrap();
    assert_eq!(a.kind, Kind::Slurm);
    assert_eq!(a.workers, 4);
    assert_eq!(a.gpus_per_worker, 0);
    assert_eq!(a.time, "04:00:00");
    assert_eq!(a.cpus_per_task, 2);
    assert_eq!(a.secret, "foresight-storage");
    assert_eq!(a.config_map, "foresight-study");
    assert!(render(&a).is_ok());
    // Kubernetes needs an image; the study's name is always needed.
    assert!(parse(&["kubernetes", "--study-file", "study.toml", "--study", "s"]).is_err());
    assert!(parse(&["slurm", "--study-file", "study.toml"]).is_err());
    assert!(parse(&["pbs", "--study-file", "study.toml", "--study", "s"]).is_err());
    let a = parse(&[
        "kubernetes",
        "--study-file",
        "study.toml",
        "--study",
        "s",
        "--image",
        "img",
        "--gpus-per-worker",
        "1",
    ])
    .unwrap();
    assert_eq!(a.kind, Kind::Kubernetes);
    assert!(render(&a).is_ok());
}
