use super::*;
use std::path::Path;

/// A corpus of two small files in two categories, one with a labelled window.
fn write_corpus(dir: &Path) {
    let mut labels = String::from("{");
    for (category, name, spike) in [("catA", "one.csv", Some(300)), ("catB", "two.csv", None)] {
        fs::create_dir_all(dir.join("data").join(category)).unwrap();
        let mut text = String::from("timestamp,value\n");
        for i in 0..400 {
            let (hour, minute) = (i * 5 / 60, i * 5 % 60);
            let value = if Some(i) == spike { 90.0 } else { 10.0 + (i % 7) as f64 };
            text += &format!(
                "2014-04-{:02} {:02}:{:02}:00,{value}\n",
                1 + hour / 24,
                hour % 24,
                minute
            );
        }
        fs::write(dir.join("data").join(category).join(name), text).unwrap();
        let windows = match spike {
            Some(_) => "[[\"2014-04-01 23:50:00.000000\", \"2014-04-02 01:30:00.000000\"]]",
            None => "[]",
        };
        labels += &format!(
            "{}\"{category}/{name}\": {windows}",
            if labels.len() > 1 { "," } else { "" }
        );
    }
    fs::create_dir_all(dir.join("labels")).unwrap();
    fs::write(dir.join("labels").join("combined_windows.json"), labels + "}").unwrap();
}

fn args(dir: &Path, results: &Path) -> NabArgs {
    NabArgs {
        dir: dir.to_path_buf(),
        results: results.to_path_buf(),
        config: None,
        score_only: false,
        detector: "tidemark".into(),
    }
}

#[test]
fn results_follow_nab_layout_and_the_spike_is_found() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let results = dir.path().join("results");
    run(args(dir.path(), &results)).unwrap();
    for (category, name) in [("catA", "one.csv"), ("catB", "two.csv")] {
        let data = fs::read_to_string(dir.path().join("data").join(category).join(name)).unwrap();
        let out = fs::read_to_string(results.join(category).join(format!("tidemark_{name}"))).unwrap();
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
        let rows: Vec<&str> = lines.collect();
        let data_rows: Vec<&str> = data.lines().skip(1).collect();
        assert_eq!(rows.len(), data_rows.len());
        for (row, data_row) in rows.iter().zip(&data_rows) {
            let (prefix, score) = row.rsplit_once(',').unwrap();
            assert_eq!(prefix, *data_row, "rows keep data order and text");
            assert!((0.0..=1.0).contains(&score.parse::<f64>().unwrap()));
        }
    }
    let files = corpus::load(dir.path()).unwrap();
    let report = score(dir.path(), &files, &results, "tidemark").unwrap();
    assert_eq!((report.best.windows, report.best.detected_windows), (1, 1));
    assert_eq!(report.null, -1.0);
    // Detected at the spike, row 300 of the window's rows 286..=306: position −7/21, worth
    // tanh(5/6)/tanh(5/2) = 0.68226/0.98661 = 0.69152; null −1 and perfect 1 give 84.58.
    assert!((report.best.score - 0.691_52).abs() < 1e-4, "{report:?}");
    assert!((report.score - 84.576).abs() < 0.01);
}

#[test]
fn unknown_detector_settings_are_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let config = dir.path().join("detector.toml");
    fs::write(&config, "warmup = 10\nsuppres_points = 5\n").unwrap();
    let error = run(NabArgs {
        config: Some(config),
        ..args(dir.path(), &dir.path().join("results"))
    })
    .unwrap_err();
    assert!(format!("{error:#}").contains("suppres_points"), "{error:#}");
}

/// Four real NAB files (when `../shared/eval/nab` is present): the layout, and a score that
/// matches the same files scored in memory.
#[test]
fn a_subset_of_the_real_corpus_runs_end_to_end() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/eval/nab");
    if !shared.join("labels/combined_windows.json").exists() {
        eprintln!("skipped: {} is absent", shared.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let subset = [
        "artificialWithAnomaly/art_daily_jumpsup.csv",
        "artificialNoAnomaly/art_daily_small_noise.csv",
        "realAdExchange/exchange-2_cpc_results.csv",
        "realTraffic/speed_7578.csv",
    ];
    for file in subset {
        let target = dir.path().join("data").join(file);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(shared.join("data").join(file), target).unwrap();
    }
    fs::create_dir_all(dir.path().join("labels")).unwrap();
    fs::copy(
        shared.join("labels/combined_windows.json"),
        dir.path().join("labels/combined_windows.json"),
    )
    .unwrap();
    let results = dir.path().join("out");
    run(args(dir.path(), &results)).unwrap();
    let files = corpus::load(dir.path()).unwrap();
    assert_eq!(files.len(), 4);
    for file in &files {
        assert!(result_path(&results, "tidemark", file).is_file(), "{}", file.key);
        assert!(
            results
                .join(&file.category)
                .join(format!("tidemark_{}", file.name))
                .is_file()
        );
    }
    let report = score(dir.path(), &files, &results, "tidemark").unwrap();
    let mut rows = Vec::new();
    let mut first_window = 0;
    for file in &files {
        rows.extend(scorer::sweep(
            &detect(file, &DetectorSettings::default()),
            &file.windows,
            first_window,
            STANDARD,
        ));
        first_window += file.windows.len();
    }
    assert_eq!(report.best, scorer::best_threshold(&rows, STANDARD));
    assert_eq!(report.perfect, 116.0);
}
