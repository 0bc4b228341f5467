# What metafor says the figure blocks hold: weights() of rma.uni and rma.mv fits (default, and
# "rowsum" summed per study), baujat() and the fitted line of regtest() (for a multilevel model,
# the line of rma.mv with the standard error as moderator), on the reference cases' data
# (metadat::dat.bcg, dat.konstantopoulos2011, dat.assink2016). test_figure_blocks.py compares the
# engine's blocks with expected.json.
#
# Computed with R's metafor 3.8-1. Re-run from this folder:
#     Rscript make_expected.R
# It rewrites expected.json.
#
# Precision, as in the reference files: rma() runs with threshold 1e-13; the sigma^2 of each rma.mv()
# model are taken to the exact REML optimum by Fisher scoring (relative step below 1e-13) and the
# model is evaluated there (rma.mv with sigma2 fixed).

suppressPackageStartupMessages(library(metafor))

RMA_CONTROL <- list(threshold = 1e-13, maxiter = 10000)

number <- function(x) if (is.na(x)) "null" else sprintf("%.17g", x)
array <- function(x) paste0("[", paste(vapply(as.numeric(x), number, ""), collapse = ", "), "]")
object <- function(fields, indent) {
  inner <- paste0(indent, "  ")
  body <- vapply(names(fields), function(n) {
    v <- fields[[n]]
    text <- if (is.list(v)) object(v, inner) else if (length(v) == 1 && !inherits(v, "AsIs")) number(v) else array(v)
    paste0(inner, "\"", n, "\": ", text)
  }, "")
  paste0("{\n", paste(body, collapse = ",\n"), "\n", indent, "}")
}

# --- one level: rma.uni -------------------------------------------------------------------------

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)

one_level <- function(method, test, mods = ~ 1) {
  fit <- rma(yi, vi, mods = mods, data = bcg, method = method, test = test, control = RMA_CONTROL)
  pdf(NULL)
  b <- baujat(fit)
  dev.off()
  out <- list(weight = I(weights(fit)), baujat_x = I(b$x), baujat_y = I(b$y))
  if (fit$int.only) {
    line <- coef(regtest(fit)$fit)
    out$egger_intercept <- unname(line[1])
    out$egger_slope <- unname(line[2])
    out$max_sei <- max(sqrt(bcg$vi))
  }
  out
}

# --- three levels: rma.mv -----------------------------------------------------------------------

# Fisher scoring of the REML sigma^2 (study, estimate within study); M = V + s1 D1 + s2 D2
reml_sigma2 <- function(y, V, X, study, es_id, start) {
  same <- outer(study, study, "==")
  D <- list(same * 1, (same & outer(es_id, es_id, "==")) * 1)
  s2 <- start
  repeat {
    Mi <- solve(V + s2[1] * D[[1]] + s2[2] * D[[2]])
    P <- Mi - Mi %*% X %*% solve(t(X) %*% Mi %*% X, t(X) %*% Mi)
    PD <- lapply(D, function(Dj) P %*% Dj)
    Py <- P %*% y
    score <- vapply(1:2, function(j) -0.5 * sum(diag(PD[[j]])) + 0.5 * drop(t(Py) %*% D[[j]] %*% Py), 0)
    info <- outer(1:2, 1:2, Vectorize(function(j, k) 0.5 * sum(PD[[j]] * t(PD[[k]]))))
    updated <- pmax(s2 + solve(info, score), 0)
    step <- max(abs(updated - s2) / pmax(abs(s2), 1e-300))
    s2 <- updated
    if (step < 1e-13) return(s2)
  }
}

three_level <- function(dat, V, mods = ~ 1) {
  X <- model.matrix(mods, data = dat)
  free <- rma.mv(yi, V, mods = mods, random = ~ 1 | study / es_id, data = dat,
                 control = list(optimizer = "optim", optmethod = "BFGS", reltol = 1e-14))
  s2 <- reml_sigma2(dat$yi, V, X, dat$study, dat$es_id, free$sigma2)
  rma.mv(yi, V, mods = mods, random = ~ 1 | study / es_id, data = dat, sigma2 = s2)
}

multilevel <- function(dat, V) {
  fit <- three_level(dat, V)
  rowsum <- weights(fit, type = "rowsum")
  egger <- coef(three_level(dat, V, mods = ~ sqrt(vi)))
  list(
    weight = I(weights(fit)),
    rowsum = I(rowsum),
    study_weight = I(tapply(rowsum, factor(dat$study, levels = unique(dat$study)), sum)),
    egger_intercept = unname(egger[1]),
    egger_slope = unname(egger[2])
  )
}

konstantopoulos <- data.frame(
  study = dat.konstantopoulos2011$district, es_id = dat.konstantopoulos2011$school,
  yi = dat.konstantopoulos2011$yi, vi = dat.konstantopoulos2011$vi
)
assink <- data.frame(study = dat.assink2016$study, es_id = dat.assink2016$esid,
                     yi = dat.assink2016$yi, vi = dat.assink2016$vi)

expected <- list(
  `bcg-RR-REML` = one_level("REML", "z"),
  `bcg-RR-REML-knha` = one_level("REML", "knha"),
  `bcg-RR-EE` = one_level("EE", "z"),
  `bcg-RR-REML-mods` = one_level("REML", "z", mods = ~ ablat + year),
  `konstantopoulos2011-GEN-ML-REML` = multilevel(konstantopoulos, diag(konstantopoulos$vi)),
  `assink2016-GEN-CHE-rho0.6` = multilevel(
    assink, vcalc(vi, cluster = study, obs = es_id, rho = 0.6, data = assink)
  )
)
writeLines(object(expected, ""), "expected.json")
