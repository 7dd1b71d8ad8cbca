/*
 * metrics.h: the evaluation metrics of VL-PET (spec 6.3) on decoded predictions.
 *
 *  - VQA accuracy: the prediction normalised like the official VQA evaluation (vqaEval.py, as
 *    VL-Adapter's VQAEvaluator.evaluate_raw runs it): newlines/tabs to spaces, strip,
 *    processPunctuation, processDigitArticle; each of the n ground-truth answers (punctuation-
 *    processed when they are not all equal) is left out in turn and the prediction scores
 *    min(1, matches among the other n − 1 / 3); the mean of those n scores.
 *  - label score (VL-Adapter's `evaluate`, GQA's exact match): label[prediction] when the
 *    prediction (as decoded, stripped) is a key of the answer → score dict, else 0.
 *  - exact match (NLVR2): the prediction equals the reference answer.
 */
#ifndef GRANULE_METRICS_H
#define GRANULE_METRICS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** vqaEval.processPunctuation (malloc'd; NULL when out of memory). */
char *vqa_process_punctuation(const char *text);
/** vqaEval.processDigitArticle (malloc'd). */
char *vqa_process_digit_article(const char *text);
/** The prediction's normalisation: whitespace, strip, punctuation, digits and articles (malloc'd). */
char *vqa_normalize_prediction(const char *prediction);

/** VQA accuracy in [0, 1] of a prediction against `count` raw ground-truth answers (count >= 1);
 *  negative when out of memory. */
double vqa_accuracy(const char *prediction, const char *const *answers, size_t count);

#ifdef __cplusplus
}
#endif

#endif
