//! Frontend behaviour through the library API: AST shape, heredocs,
//! directives, errors with positions, ARG/ENV scoping and stage resolution.

use rbuild::frontend::ast::{Healthcheck, InstructionKind, MountType};
use rbuild::frontend::lint::Linter;
use rbuild::frontend::lower::{BuildOptions, BuildPlan, Source, UnknownImages, lower};
use rbuild::frontend::parse_dockerfile;

fn plan(
    src: &str,
    args: &[(&str, &str)],
    target: Option<&str>,
) -> Result<(BuildPlan, Linter), String> {
    let (df, mut linter) = parse_dockerfile(src).map_err(|e| e.to_string())?;
    let opts = BuildOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target: target.map(String::from),
        ..Default::default()
    };
    let p = lower(&df, &opts, &UnknownImages, &mut linter).map_err(|e| e.to_string())?;
    Ok((p, linter))
}

fn env_of(p: &BuildPlan, stage: usize, step: usize, key: &str) -> Option<String> {
    p.stages[stage].steps[step]
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

#[test]
fn every_instruction_parses_into_its_variant() {
    let src = r#"FROM --platform=linux/amd64 scratch AS base
RUN --mount=type=cache,target=/c --network=none --security=sandbox make
CMD ["run"]
LABEL a=b "c d"=e
MAINTAINER someone
EXPOSE 80/tcp 53/udp
ENV K=V
ADD --chown=1:2 --chmod=644 --link --checksum=sha256:abc https://x/y.tgz /y
COPY --from=base --parents --exclude=*.md --exclude=*.txt a b /dst/
ENTRYPOINT ["/bin/app"]
VOLUME ["/data", "/logs"]
USER nobody:nogroup
WORKDIR /w
ARG X=1 Y
ONBUILD RUN echo triggered
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/
SHELL ["/bin/sh", "-ec"]
"#;
    let (df, _) = parse_dockerfile(src).unwrap();
    let st = &df.stages[0];
    assert_eq!(st.name.as_deref(), Some("base"));
    assert_eq!(st.platform.as_deref(), Some("linux/amd64"));
    let names: Vec<&str> = st.instructions.iter().map(|i| i.kind.name()).collect();
    assert_eq!(
        names,
        [
            "RUN",
            "CMD",
            "LABEL",
            "MAINTAINER",
            "EXPOSE",
            "ENV",
            "ADD",
            "COPY",
            "ENTRYPOINT",
            "VOLUME",
            "USER",
            "WORKDIR",
            "ARG",
            "ONBUILD",
            "STOPSIGNAL",
            "HEALTHCHECK",
            "SHELL"
        ]
    );
    let InstructionKind::Run(run) = &st.instructions[0].kind else {
        panic!()
    };
    assert_eq!(run.mounts[0].kind, MountType::Cache);
    assert!(!run.command.exec_form);
    let InstructionKind::Copy(copy) = &st.instructions[7].kind else {
        panic!()
    };
    assert_eq!(copy.from.as_deref(), Some("base"));
    assert!(copy.parents);
    assert_eq!(copy.options.exclude, ["*.md", "*.txt"]);
    assert_eq!(copy.paths.sources, ["a", "b"]);
    assert_eq!(copy.paths.dest, "/dst/");
    let InstructionKind::Add(add) = &st.instructions[6].kind else {
        panic!()
    };
    assert_eq!(add.checksum.as_deref(), Some("sha256:abc"));
    assert!(add.options.link);
    let InstructionKind::Healthcheck {
        health:
            Healthcheck::Cmd {
                test,
                interval_ns,
                retries,
                ..
            },
    } = &st.instructions[15].kind
    else {
        panic!()
    };
    assert_eq!(test, &["CMD-SHELL", "curl -f http://localhost/"]);
    assert_eq!(*interval_ns, 5_000_000_000);
    assert_eq!(*retries, 3);
    let InstructionKind::Onbuild {
        expression,
        trigger,
    } = &st.instructions[13].kind
    else {
        panic!()
    };
    assert_eq!(expression, "RUN echo triggered");
    assert_eq!(trigger.kind.name(), "RUN");
    assert_eq!(st.instructions[1].span.start.line, 3);
}

#[test]
fn heredocs_several_per_line_chomped_and_quoted() {
    let src = "FROM scratch\nRUN <<A cat >/a && <<-\"B\" cat >/b\nline $X\nA\n\tquoted $X\n\tB\nCOPY <<EOF /dest\ncontent\nEOF\nRUN echo done\n";
    let (df, _) = parse_dockerfile(src).unwrap();
    let InstructionKind::Run(run) = &df.stages[0].instructions[0].kind else {
        panic!()
    };
    let docs = &run.command.heredocs;
    assert_eq!(docs.len(), 2);
    assert_eq!(
        (docs[0].name.as_str(), docs[0].expand, docs[0].chomp),
        ("A", true, false)
    );
    assert_eq!(docs[0].content, "line $X\n");
    assert_eq!(
        (docs[1].name.as_str(), docs[1].expand, docs[1].chomp),
        ("B", false, true)
    );
    let InstructionKind::Copy(copy) = &df.stages[0].instructions[1].kind else {
        panic!()
    };
    assert_eq!(copy.paths.inline_sources[0].content, "content\n");
    assert!(copy.paths.sources.is_empty());
    assert_eq!(df.stages[0].instructions[2].span.start.line, 10);
}

#[test]
fn heredoc_content_expands_in_copy_unless_quoted() {
    let src = "FROM scratch\nENV X=1\nCOPY <<EOF /a\nv=$X\nEOF\nCOPY <<'EOF' /b\nv=$X\nEOF\n";
    let (p, _) = plan(src, &[], None).unwrap();
    let content = |i: usize| match &p.stages[0].steps[i].instruction.kind {
        InstructionKind::Copy(c) => c.paths.inline_sources[0].content.clone(),
        _ => panic!(),
    };
    assert_eq!(content(1), "v=1\n");
    assert_eq!(content(2), "v=$X\n");
}

#[test]
fn unterminated_heredoc_is_an_error_with_line() {
    let err = parse_dockerfile("FROM scratch\nRUN <<EOF\necho\n").unwrap_err();
    assert_eq!(err.pos.line, 2);
    assert!(err.message.contains("unterminated heredoc"));
}

#[test]
fn backtick_escape_directive_applies_to_continuations_and_words() {
    let src = "# escape=`\nFROM scratch\nRUN echo a `\n    b\nENV P=C:\\dir\n";
    let (df, _) = parse_dockerfile(src).unwrap();
    assert_eq!(df.escape, '`');
    let InstructionKind::Run(run) = &df.stages[0].instructions[0].kind else {
        panic!()
    };
    assert_eq!(run.command.args, ["echo a     b"]);
    let (p, _) = plan(src, &[], None).unwrap();
    let InstructionKind::Env { pairs } = &p.stages[0].steps[1].instruction.kind else {
        panic!()
    };
    assert_eq!(pairs[0].value, "C:\\dir");
}

#[test]
fn errors_name_line_and_column() {
    let e = parse_dockerfile("FROM scratch\n  COPPY a b\n").unwrap_err();
    assert_eq!((e.pos.line, e.pos.col), (2, 3));
    assert!(e.message.contains("did you mean COPY?"), "{}", e.message);
    let e = parse_dockerfile("FROM scratch\nCOPY --chwon=1 a b\n").unwrap_err();
    assert_eq!((e.pos.line, e.pos.col), (2, 6));
    assert!(
        e.message
            .contains("unknown flag: --chwon (did you mean chown?)"),
        "{}",
        e.message
    );
    let e = parse_dockerfile("FROM scratch\nCOPY onlyone\n").unwrap_err();
    assert!(e.message.contains("requires at least two arguments"));
    let e = parse_dockerfile("RUN x\n").unwrap_err();
    assert!(e.message.contains("no build stage"));
    let e = parse_dockerfile("FROM a AS 1bad\n").unwrap_err();
    assert!(e.message.contains("invalid name for build stage"));
    let e = parse_dockerfile("FROM scratch\nSHELL /bin/sh\n").unwrap_err();
    assert!(e.message.contains("JSON form"));
    let e = parse_dockerfile("FROM scratch\nRUN --mount=type=cahce,target=/x true\n").unwrap_err();
    assert!(e.message.contains("did you mean cache"), "{}", e.message);
    let e = parse_dockerfile("FROM scratch\nHEALTHCHECK --interval=1 CMD x\n").unwrap_err();
    assert!(e.message.contains("missing unit"), "{}", e.message);
}

#[test]
fn global_args_feed_from_and_build_args_override() {
    let src = "ARG TAG=1.0\nARG IMG=busybox:${TAG}\nFROM $IMG\nRUN true\n";
    let (p, _) = plan(src, &[], None).unwrap();
    assert_eq!(p.stages[0].base, Source::Image("busybox:1.0".into()));
    let (p, _) = plan(src, &[("TAG", "2.0")], None).unwrap();
    assert_eq!(p.stages[0].base, Source::Image("busybox:2.0".into()));
    let (p, _) = plan(src, &[("IMG", "alpine")], None).unwrap();
    assert_eq!(p.stages[0].base, Source::Image("alpine".into()));
}

#[test]
fn global_arg_needs_redeclaring_inside_a_stage() {
    let src = "ARG V=g\nFROM scratch\nENV A=${V}\nARG V\nENV B=${V}\n";
    let (p, _) = plan(src, &[], None).unwrap();
    assert_eq!(env_of(&p, 0, 0, "A").as_deref(), Some(""));
    assert_eq!(env_of(&p, 0, 2, "B").as_deref(), Some("g"));
}

#[test]
fn env_overrides_arg_and_build_arg_overrides_default() {
    let src = "FROM scratch\nARG V=default\nENV V=fromenv\nWORKDIR /$V\nARG W=w1\nWORKDIR /$W\n";
    let (p, _) = plan(src, &[("V", "cli"), ("W", "cli")], None).unwrap();
    let wd = |i: usize| match &p.stages[0].steps[i].instruction.kind {
        InstructionKind::Workdir { path } => path.clone(),
        _ => panic!(),
    };
    assert_eq!(wd(2), "/fromenv");
    assert_eq!(wd(4), "/cli");
}

#[test]
fn predefined_platform_args() {
    let src =
        "FROM scratch\nARG TARGETARCH\nARG BUILDPLATFORM\nWORKDIR /$TARGETARCH/$BUILDPLATFORM\n";
    let (p, _) = plan(src, &[], None).unwrap();
    let InstructionKind::Workdir { path } = &p.stages[0].steps[2].instruction.kind else {
        panic!()
    };
    assert!(
        path.starts_with("/amd64/linux/") || path.starts_with("/arm64/linux/"),
        "{path}"
    );
}

#[test]
fn expansion_forms_in_instructions() {
    let src = "FROM scratch\nENV A=hello B=\"x y\"\nLABEL l1=${A:-d} l2=${NOPE:-d} l3=${A:+set} l4=${A#he} l5=${A%lo} l6=${A/l/L}\nEXPOSE ${P:-80} 443\nUSER ${U:-root}\n";
    let (p, _) = plan(src, &[], None).unwrap();
    let InstructionKind::Label { pairs } = &p.stages[0].steps[1].instruction.kind else {
        panic!()
    };
    let vals: Vec<&str> = pairs.iter().map(|p| p.value.as_str()).collect();
    assert_eq!(vals, ["hello", "d", "set", "llo", "hel", "heLlo"]);
    let InstructionKind::Expose { ports } = &p.stages[0].steps[2].instruction.kind else {
        panic!()
    };
    assert_eq!(ports, &["80", "443"]);
    assert_eq!(env_of(&p, 0, 1, "B").as_deref(), Some("x y"));
    let e = plan("FROM scratch\nWORKDIR ${X:?must be set}\n", &[], None).unwrap_err();
    assert!(e.contains("X: must be set"), "{e}");
}

#[test]
fn run_and_cmd_are_not_expanded_by_the_frontend() {
    let src = "FROM scratch\nENV A=1\nRUN echo $A\nCMD echo $A\n";
    let (p, _) = plan(src, &[], None).unwrap();
    let InstructionKind::Run(r) = &p.stages[0].steps[1].instruction.kind else {
        panic!()
    };
    assert_eq!(r.command.args, ["echo $A"]);
    assert_eq!(env_of(&p, 0, 1, "A").as_deref(), Some("1"));
}

#[test]
fn stages_by_name_index_target_and_order() {
    let src = "FROM scratch AS a\nFROM scratch AS b\nCOPY --from=a / /\nFROM b AS c\nFROM scratch AS unrelated\nFROM scratch\nCOPY --from=2 / /\n";
    let (p, _) = plan(src, &[], None).unwrap();
    assert_eq!(p.target, 4);
    assert_eq!(p.order, [0, 1, 2, 4]);
    assert_eq!(p.stages[2].base, Source::Stage(1));
    let (p, _) = plan(src, &[], Some("b")).unwrap();
    assert_eq!(p.order, [0, 1]);
    let e = plan(src, &[], Some("nope")).unwrap_err();
    assert!(e.contains("target stage \"nope\" could not be found"));
}

#[test]
fn duplicate_names_warn_cycles_and_bad_from_are_rejected() {
    // BuildKit: testDuplicateStageName. A warning; the name means its last stage.
    let (p, linter) = plan(
        "FROM scratch AS a\nFROM scratch AS A\nFROM scratch\nCOPY --from=a / /\n",
        &[],
        Some("a"),
    )
    .unwrap();
    assert_eq!(p.target, 1);
    let rules: Vec<&str> = linter.warnings.iter().map(|w| w.rule).collect();
    assert_eq!(rules, ["StageNameCasing", "DuplicateStageName"]);
    assert_eq!(
        linter.warnings[1].message,
        "Duplicate stage name \"a\", stage names should be unique"
    );
    let (p, _) = plan(
        "FROM scratch AS a\nFROM scratch AS a\nFROM scratch\nCOPY --from=a / /\n",
        &[],
        None,
    )
    .unwrap();
    assert_eq!(p.stages[2].steps[0].copy_from, Some(Source::Stage(1)));
    let e = plan(
        "FROM scratch AS a\nCOPY --from=b / /\nFROM scratch AS b\nCOPY --from=a / /\n",
        &[],
        None,
    )
    .unwrap_err();
    assert!(e.contains("circular dependency"), "{e}");
    let e = plan("FROM scratch AS a\nCOPY --from=a / /\n", &[], None).unwrap_err();
    assert!(e.contains("circular dependency"), "{e}");
    let e = plan(
        "ARG X=a\nFROM scratch AS a\nCOPY --from=$X / /\n",
        &[],
        None,
    )
    .unwrap_err();
    assert!(e.contains("not supported for --from"), "{e}");
    let e = plan("FROM scratch\nCOPY --from=7 / /\n", &[], None).unwrap_err();
    assert!(e.contains("invalid stage index"), "{e}");
}

#[test]
fn from_earlier_stage_name_only_otherwise_image() {
    let src = "FROM later\nFROM scratch AS later\n";
    let (p, _) = plan(src, &[], Some("later")).unwrap();
    assert_eq!(p.stages[0].base, Source::Image("later".into()));
}

#[test]
fn build_checks_report_rules() {
    let src = "FROM scratch AS Build\nENV K v\nCMD a\nCMD b\nMAINTAINER m\nLABEL x=$UNDEF\nARG API_TOKEN\n";
    let (_, linter) = plan(src, &[("UNUSED", "1")], None).unwrap();
    let rules: Vec<&str> = linter.warnings.iter().map(|w| w.rule).collect();
    for r in [
        "StageNameCasing",
        "LegacyKeyValueFormat",
        "JSONArgsRecommended",
        "MultipleInstructionsDisallowed",
        "MaintainerDeprecated",
        "UndefinedVar",
        "SecretsUsedInArgOrEnv",
    ] {
        assert!(rules.contains(&r), "missing {r} in {rules:?}");
    }
    let (p, _) = plan(src, &[("UNUSED", "1")], None).unwrap();
    assert_eq!(p.unused_build_args, ["UNUSED"]);
}

#[test]
fn check_directive_skips_rules() {
    let src = "# check=skip=JSONArgsRecommended\nFROM scratch\nCMD a\n";
    let (_, linter) = plan(src, &[], None).unwrap();
    assert!(linter.warnings.is_empty(), "{:?}", linter.warnings);
    let (_, linter) = plan("# check=error=true\nFROM scratch\nCMD a\n", &[], None).unwrap();
    assert!(linter.config.error && !linter.warnings.is_empty());
}

#[test]
fn run_mount_values_are_expanded() {
    let src = "FROM scratch AS deps\nFROM scratch\nARG CACHE=/root/.cache\nRUN --mount=type=cache,target=$CACHE,id=x --mount=type=bind,from=deps,target=/d true\n";
    let (p, _) = plan(src, &[], None).unwrap();
    let step = &p.stages[1].steps[1];
    assert_eq!(step.mounts[0].0.target.as_deref(), Some("/root/.cache"));
    assert_eq!(step.mounts[1].1, Some(Source::Stage(0)));
    assert_eq!(p.stages[1].deps, [0]);
}

#[test]
fn instruction_keywords_are_case_insensitive_and_continuations_keep_positions() {
    let src = "from scratch\nrun echo a \\\n  # comment inside\n\n  b\ncopy x y\n";
    let (df, linter) = parse_dockerfile(src).unwrap();
    let st = &df.stages[0];
    let InstructionKind::Run(r) = &st.instructions[0].kind else {
        panic!()
    };
    assert_eq!(r.command.args, ["echo a   b"]);
    assert_eq!(st.instructions[0].span.end_line, 5);
    assert_eq!(st.instructions[1].span.start.line, 6);
    assert!(
        linter
            .warnings
            .iter()
            .any(|w| w.rule == "NoEmptyContinuation")
    );
}

#[test]
fn env_pairs_in_one_instruction_see_the_previous_environment() {
    // The example from Docker's documentation.
    let src = "FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n";
    let (p, _) = plan(src, &[], None).unwrap();
    assert_eq!(env_of(&p, 0, 1, "def").as_deref(), Some("hello"));
    assert_eq!(env_of(&p, 0, 2, "ghi").as_deref(), Some("bye"));
}
