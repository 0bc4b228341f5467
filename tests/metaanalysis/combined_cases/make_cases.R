# Reference cases whose keys call for several models at once (shared/reference/README.md):
# `model: multilevel` or `model: rma` beside `rho` (the *_vcalc blocks) and `struct: CS` (the
# aggregated blocks), on data of existing metafor-dependent cases (metadat::dat.assink2016,
# metadat::dat.tannersmith2016; the rows are in assink2016.csv and tannersmith2016.csv).
#
# Computed with R's metafor 3.8-1 and clubSandwich 0.5.8. Re-run from this folder:
#     Rscript make_cases.R
# It rewrites the *.json case files here.
#
# Precision, as in the shared reference files: rma() runs with threshold 1e-13; the sigma^2 of
# every rma.mv() model are polished to the exact ML/REML optimum by Fisher scoring (relative step
# below 1e-13; the script stops if a score is above 1e-8), and the model is then evaluated at them
# (rma.mv with sigma2 fixed), so fit statistics count the two variance components by hand.
# Profile-likelihood intervals come from the free fit (BFGS to reltol 1e-14) with uniroot to 1e-12.

suppressPackageStartupMessages({
  library(metafor)
  library(clubSandwich)
})

RMA_CONTROL <- list(threshold = 1e-13, maxiter = 10000)
FREE_CONTROL <- list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-14)

# --- JSON --------------------------------------------------------------------------------------

json_number <- function(x) {
  if (is.na(x)) return("null")
  text <- sprintf("%.15g", x)
  if (as.numeric(text) != x) text <- sprintf("%.17g", x)
  text
}

json_scalar <- function(x) {
  if (is.character(x)) return(paste0("\"", gsub("\"", "\\\\\"", x), "\""))
  if (is.logical(x) && !is.na(x)) return(if (x) "true" else "false")
  json_number(as.numeric(x))
}

# a named list is an object, an unnamed list or an I() vector (or any vector but of length one)
# an array
to_json <- function(x, indent = "") {
  inner <- paste0(indent, "  ")
  if (is.list(x) && !is.null(names(x))) {
    if (length(x) == 0) return("{}")
    parts <- vapply(names(x), function(n) paste0(inner, "\"", n, "\": ", to_json(x[[n]], inner)), "")
    return(paste0("{\n", paste(parts, collapse = ",\n"), "\n", indent, "}"))
  }
  if (is.list(x)) {
    parts <- vapply(x, function(e) to_json(e, inner), "")
    return(paste0("[", paste(parts, collapse = ", "), "]"))
  }
  if (inherits(x, "AsIs") || length(x) != 1) {
    return(paste0("[", paste(vapply(seq_along(x), function(i) json_scalar(unclass(x)[i]), ""), collapse = ", "), "]"))
  }
  json_scalar(x)
}

vec <- function(x) I(as.vector(x))

# --- the three-level model at the exact optimum -----------------------------------------------

# Fisher scoring of sigma^2 (outer: study, inner: estimate within study); M = V + s1 D1 + s2 D2.
polish_sigma2 <- function(y, V, X, study, es_id, method, start) {
  same_study <- outer(study, study, "==")
  D <- list(same_study * 1, (same_study & outer(es_id, es_id, "==")) * 1)
  s2 <- start
  for (iteration in 1:500) {
    Mi <- solve(V + s2[1] * D[[1]] + s2[2] * D[[2]])
    XtMiX <- t(X) %*% Mi %*% X
    b <- solve(XtMiX, t(X) %*% Mi %*% y)
    Mr <- Mi %*% (y - X %*% b)
    A <- if (method == "REML") Mi - Mi %*% X %*% solve(XtMiX, t(X) %*% Mi) else Mi
    AD <- lapply(D, function(Dj) A %*% Dj)
    score <- vapply(1:2, function(j) -0.5 * sum(diag(AD[[j]])) + 0.5 * drop(t(Mr) %*% D[[j]] %*% Mr), 0)
    info <- matrix(0, 2, 2)
    for (j in 1:2) for (k in 1:2) info[j, k] <- 0.5 * sum(AD[[j]] * t(AD[[k]]))
    updated <- pmax(s2 + solve(info, score), 0)
    step <- max(abs(updated - s2) / pmax(abs(s2), 1e-300))
    s2 <- updated
    if (step < 1e-13) break
  }
  if (max(abs(score)) > 1e-8) stop("sigma^2 not at the optimum: score ", paste(score, collapse = ", "))
  s2
}

# fit statistics with the two variance components counted (parms = p + 2)
fit_statistics <- function(fit, V) {
  k <- fit$k
  p <- fit$p
  parms <- p + 2
  ll <- as.numeric(logLik(fit))
  if (fit$method == "REML") {
    n <- k - p
    deviance <- -2 * ll
  } else {
    n <- k
    ll_sat <- -k / 2 * log(2 * pi) - 0.5 * as.numeric(determinant(V, logarithm = TRUE)$modulus)
    deviance <- -2 * (ll - ll_sat)
  }
  big_n <- max(n, parms + 2)
  list(
    logLik = ll,
    deviance = deviance,
    AIC = -2 * ll + 2 * parms,
    BIC = -2 * ll + parms * log(n),
    AICc = -2 * ll + 2 * parms * big_n / (big_n - parms - 1)
  )
}

coefficients_of <- function(res) {
  list(
    beta = vec(res$b), se = vec(res$se), stat = vec(res$zval), pval = vec(res$pval),
    ci_lb = vec(res$ci.lb), ci_ub = vec(res$ci.ub)
  )
}

tests_of_moderators <- function(res) {
  if (res$p == 1) return(list())
  list(QM = res$QM, QMp = res$QMp, QMdf = vec(res$QMdf))
}

multilevel <- function(dat, V, mods, method, test, with_i2) {
  X <- model.matrix(mods, data = dat)
  free <- rma.mv(dat$yi, V, mods = mods, random = ~ 1 | study / es_id, data = dat,
                 method = method, test = test, control = FREE_CONTROL)
  s2 <- polish_sigma2(dat$yi, V, X, dat$study, dat$es_id, method, free$sigma2)
  fit <- rma.mv(dat$yi, V, mods = mods, random = ~ 1 | study / es_id, data = dat,
                method = method, test = test, sigma2 = s2)
  block <- c(
    list(k = fit$k, p = fit$p, coef_names = vec(rownames(fit$b))),
    coefficients_of(fit),
    list(sigma2 = vec(fit$sigma2), s_nlevels = vec(fit$s.nlevels), QE = fit$QE, QEp = fit$QEp),
    tests_of_moderators(fit),
    if (test == "t") list(dfs = vec(fit$ddf)) else list(),
    fit_statistics(fit, V)
  )
  if (with_i2) {
    W <- diag(1 / dat$vi)
    P <- W - W %*% X %*% solve(t(X) %*% W %*% X) %*% t(X) %*% W
    typical <- (fit$k - fit$p) / sum(diag(P))
    block$I2 <- vec(100 * fit$sigma2 / (sum(fit$sigma2) + typical))
    block$I2_total <- 100 * sum(fit$sigma2) / (sum(fit$sigma2) + typical)
  }
  list(fit = fit, free = free, block = block)
}

profile_intervals <- function(free) {
  ci <- confint(free, control = list(tol = 1e-12))
  list(
    sigma2 = lapply(1:2, function(j) vec(ci[[j]]$random[1, ])),
    sigma = lapply(1:2, function(j) vec(ci[[j]]$random[2, ]))
  )
}

prediction <- function(fit) {
  pr <- predict(fit)
  list(pred = pr$pred, se = pr$se, ci_lb = pr$ci.lb, ci_ub = pr$ci.ub, pi_lb = pr$pi.lb, pi_ub = pr$pi.ub)
}

robust_tests <- function(fit, study, cr2) {
  res <- robust(fit, cluster = study, clubSandwich = cr2)
  c(
    coefficients_of(res),
    list(dfs = vec(rep_len(res$ddf, fit$p)), n_clusters = length(unique(study))),
    tests_of_moderators(res)
  )
}

one_level <- function(yi, vi, mods, data, method, test) {
  fit <- rma(yi, vi, mods = mods, data = data, method = method, test = test, control = RMA_CONTROL)
  block <- c(
    list(k = fit$k, p = fit$p, coef_names = vec(rownames(fit$b))),
    coefficients_of(fit),
    list(tau2 = fit$tau2, se_tau2 = fit$se.tau2, I2 = fit$I2, H2 = fit$H2, QE = fit$QE, QEp = fit$QEp),
    if (fit$p > 1) c(tests_of_moderators(fit), list(R2 = fit$R2)) else list(),
    if (test != "z") list(dfs = vec(fit$ddf)) else list()
  )
  list(fit = fit, block = block)
}

aggregated_rows <- function(dat, rho) {
  es <- escalc(measure = "GEN", yi = yi, vi = vi, data = dat)
  agg <- aggregate(es, cluster = study, struct = "CS", rho = rho, addk = TRUE)
  agg <- agg[match(unique(dat$study), agg$study), ]
  list(study = vec(as.character(agg$study)), ki = vec(agg$ki), yi = vec(as.numeric(agg$yi)),
       vi = vec(as.numeric(agg$vi)))
}

# --- the cases ---------------------------------------------------------------------------------

rows_of <- function(dat, columns) {
  lapply(seq_len(nrow(dat)), function(i) {
    row <- lapply(columns, function(c) dat[[c]][i])
    names(row) <- columns
    row
  })
}

write_case <- function(keys, dat, columns, expected) {
  case <- c(keys, list(columns = vec(columns), rows = rows_of(dat, columns), expected = expected))
  path <- paste0(keys$id, ".json")
  writeLines(to_json(case), path)
  cat("wrote", path, "\n")
}

source_note <- function(data) {
  paste0("metadat::dat.", data, " (rows as in the metafor-dependent case); combined keys; computed with metafor ",
         packageVersion("metafor"), " and clubSandwich ", packageVersion("clubSandwich"), " (make_cases.R)")
}

assink <- read.csv("assink2016.csv", colClasses = c(study = "character"))
tanner <- read.csv("tannersmith2016.csv", colClasses = c(study = "character"))
tanner$vi <- tanner$sei^2
tanner$es_id <- ave(seq_len(nrow(tanner)), tanner$study, FUN = seq_along)

# the rows as independent studies, the multilevel model and the correlated (vcalc) model, each with
# its cluster-robust tests
multilevel_and_correlated <- function(dat, rho, method, test, mods) {
  V <- vcalc(vi, cluster = study, obs = es_id, rho = rho, data = dat)
  ml <- multilevel(dat, diag(dat$vi), mods, method, test, with_i2 = TRUE)
  che <- multilevel(dat, V, mods, method, test, with_i2 = FALSE)
  rows_model <- one_level(yi, vi, mods, dat, method, test)
  expected <- list(
    effect_sizes = list(yi = vec(dat$yi), vi = vec(dat$vi)),
    fit = rows_model$block,
    multilevel_fit = ml$block,
    multilevel_confint = profile_intervals(ml$free)
  )
  if (ml$fit$p == 1) expected$predict <- prediction(ml$fit)
  expected$robust_cr1 <- robust_tests(ml$fit, dat$study, FALSE)
  expected$robust_cr2 <- robust_tests(ml$fit, dat$study, TRUE)
  expected$multilevel_fit_vcalc <- che$block
  if (che$fit$p == 1) expected$predict_vcalc <- prediction(che$fit)
  expected$robust_cr1_vcalc <- robust_tests(che$fit, dat$study, FALSE)
  expected$robust_cr2_vcalc <- robust_tests(che$fit, dat$study, TRUE)
  expected
}

# A: the multilevel model, the correlated (vcalc) model and aggregation in one case
expected <- multilevel_and_correlated(assink, 0.6, "REML", "z", ~ 1)
agg <- aggregated_rows(assink, 0.6)
expected$aggregated <- agg
expected$aggregated_fit <- one_level(agg$yi, agg$vi, ~ 1, NULL, "REML", "z")$block
write_case(
  list(id = "assink2016-GEN-multilevel-CHE-aggregate-rho0.6", source = source_note("assink2016"),
       measure = "GEN", method = "REML", test = "z", level = 95, mods = vec(character(0)),
       model = "multilevel", random = vec(c("study", "es_id")), cluster = "study", rho = 0.6, struct = "CS"),
  assink, c("study", "es_id", "yi", "vi"), expected
)

# B: meta-regression by ML with t tests, multilevel beside the correlated model
expected <- multilevel_and_correlated(assink, 0.3, "ML", "t", ~ pubstatus + year)
write_case(
  list(id = "assink2016-GEN-ML-t-mods-multilevel-CHE-rho0.3", source = source_note("assink2016"),
       measure = "GEN", method = "ML", test = "t", level = 95, mods = vec(c("pubstatus", "year")),
       model = "multilevel", random = vec(c("study", "es_id")), cluster = "study", rho = 0.3),
  assink, c("study", "es_id", "yi", "vi", "pubstatus", "year"), expected
)

# C: rows as independent studies with cluster-robust tests, beside aggregation
rows_model <- one_level(yi, vi, ~ 1, tanner, "REML", "z")
agg <- aggregated_rows(tanner, 0.6)
expected <- list(
  effect_sizes = list(yi = vec(tanner$yi), vi = vec(tanner$vi)),
  fit = rows_model$block,
  predict = prediction(rows_model$fit),
  robust_cr1 = robust_tests(rows_model$fit, tanner$study, FALSE),
  robust_cr2 = robust_tests(rows_model$fit, tanner$study, TRUE),
  aggregated = agg,
  aggregated_fit = one_level(agg$yi, agg$vi, ~ 1, NULL, "REML", "z")$block
)
write_case(
  list(id = "tannersmith2016-GEN-sei-rma-robust-aggregate-rho0.6", source = source_note("tannersmith2016"),
       measure = "GEN", method = "REML", test = "z", level = 95, mods = vec(character(0)),
       model = "rma", cluster = "study", rho = 0.6, struct = "CS"),
  tanner, c("study", "yi", "sei"), expected
)
