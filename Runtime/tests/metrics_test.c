/*
 * metrics_test.c: VQA answer normalisation and accuracy (main/metrics.c). The expected values are
 * worked out by hand from vqaEval.py (processPunctuation, processDigitArticle) and VL-Adapter's
 * VQAEvaluator.evaluate_raw, not taken from the code under test.
 */
#include "test.h"

#include "../main/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Checks f(input) == want and frees the result. */
#define CHECK_NORMALIZES(f, input, want)   \
    do {                                   \
        char *got_ = (f)(input);           \
        CHECK_STR_EQ(got_, want);          \
        free(got_);                        \
    } while (0)

static void test_process_punctuation(void) {
    /* a punctuation mark with no space next to it becomes a space ... */
    CHECK_NORMALIZES(vqa_process_punctuation, "yes!", "yes ");
    CHECK_NORMALIZES(vqa_process_punctuation, "a,b", "a b");
    CHECK_NORMALIZES(vqa_process_punctuation, "black/white", "black white");
    CHECK_NORMALIZES(vqa_process_punctuation, "t-shirt", "t shirt");
    CHECK_NORMALIZES(vqa_process_punctuation, "(approx)", " approx ");
    CHECK_NORMALIZES(vqa_process_punctuation, "\"yes\"", " yes ");
    CHECK_NORMALIZES(vqa_process_punctuation, "a\\b", "a b");
    CHECK_NORMALIZES(vqa_process_punctuation, "x;y=z+w_v>u<t@s`r[q]p{o}", "x y z w v u t s r q p o ");
    /* ... and disappears when the *input* has it next to a space */
    CHECK_NORMALIZES(vqa_process_punctuation, "a, b", "a b");
    CHECK_NORMALIZES(vqa_process_punctuation, "black / white", "black  white");
    CHECK_NORMALIZES(vqa_process_punctuation, "hi ?", "hi ");
    /* the test looks at the input, not at the text after earlier marks: in "why?!" neither mark
     * touches a space, so both become spaces (not "why " after "why !") */
    CHECK_NORMALIZES(vqa_process_punctuation, "why?!", "why  ");
    /* a digit,digit anywhere removes every mark */
    CHECK_NORMALIZES(vqa_process_punctuation, "1,000", "1000");
    CHECK_NORMALIZES(vqa_process_punctuation, "1,000 (approx)", "1000 approx");
    CHECK_NORMALIZES(vqa_process_punctuation, "a-b 2,5", "ab 25");
    /* periods go unless a digit follows */
    CHECK_NORMALIZES(vqa_process_punctuation, "Two dogs.", "Two dogs");
    CHECK_NORMALIZES(vqa_process_punctuation, "3.5", "3.5");
    CHECK_NORMALIZES(vqa_process_punctuation, "3.5.", "3.5");
    CHECK_NORMALIZES(vqa_process_punctuation, ".5", ".5");
    CHECK_NORMALIZES(vqa_process_punctuation, "1.2.3", "1.2.3");
    CHECK_NORMALIZES(vqa_process_punctuation, "e.g.", "eg");
    CHECK_NORMALIZES(vqa_process_punctuation, "x. 5", "x 5");
    /* periodStrip.sub("", text, re.UNICODE): count = 32, so 40 periods leave 8 */
    CHECK_NORMALIZES(vqa_process_punctuation, "........................................", "........");
    /* untouched: apostrophes, colons, other characters */
    CHECK_NORMALIZES(vqa_process_punctuation, "cat's 10:30 caf\xC3\xA9", "cat's 10:30 caf\xC3\xA9");
    CHECK_NORMALIZES(vqa_process_punctuation, "", "");
}

static void test_process_digit_article(void) {
    CHECK_NORMALIZES(vqa_process_digit_article, "Two dogs", "2 dogs");
    CHECK_NORMALIZES(vqa_process_digit_article, "  The   THREE  cats ", "3 cats");
    CHECK_NORMALIZES(vqa_process_digit_article, "none of the above", "0 of above");
    CHECK_NORMALIZES(vqa_process_digit_article, "zero one two three four five six seven eight nine ten eleven",
                     "0 1 2 3 4 5 6 7 8 9 10 eleven");
    CHECK_NORMALIZES(vqa_process_digit_article, "an apple a day", "apple day");
    CHECK_NORMALIZES(vqa_process_digit_article, "The", "");
    CHECK_NORMALIZES(vqa_process_digit_article, "", "");
    CHECK_NORMALIZES(vqa_process_digit_article, "a\tb\nc", "b c");
    /* contractions (after lower-casing) */
    CHECK_NORMALIZES(vqa_process_digit_article, "isnt", "isn't");
    CHECK_NORMALIZES(vqa_process_digit_article, "DONT whats yall'll", "don't what's y'all'll");
    CHECK_NORMALIZES(vqa_process_digit_article, "It's a dog", "it's dog");
    /* the capitalised keys ("Im", "Ive") never match a lower-cased word */
    CHECK_NORMALIZES(vqa_process_digit_article, "Im Ive", "im ive");
    /* words keep their punctuation */
    CHECK_NORMALIZES(vqa_process_digit_article, "two. the,", "two. the,");
}

static void test_normalize_prediction(void) {
    CHECK_NORMALIZES(vqa_normalize_prediction, "Two dogs.", "2 dogs");
    CHECK_NORMALIZES(vqa_normalize_prediction, "the cat's toy", "cat's toy");
    CHECK_NORMALIZES(vqa_normalize_prediction, "yes!", "yes");
    CHECK_NORMALIZES(vqa_normalize_prediction, "No.", "no");
    CHECK_NORMALIZES(vqa_normalize_prediction, "1,000", "1000");
    CHECK_NORMALIZES(vqa_normalize_prediction, "It's a dog", "it's dog");
    CHECK_NORMALIZES(vqa_normalize_prediction, "isnt it", "isn't it");
    CHECK_NORMALIZES(vqa_normalize_prediction, "3.5", "3.5");
    CHECK_NORMALIZES(vqa_normalize_prediction, "e.g. 3.5", "eg 3.5");
    CHECK_NORMALIZES(vqa_normalize_prediction, "\tYes\n", "yes");
    CHECK_NORMALIZES(vqa_normalize_prediction, "  a\tb\nc  ", "b c");
    /* tabs become spaces before the punctuation test: "well-known -" has " -", so every '-' goes */
    CHECK_NORMALIZES(vqa_normalize_prediction, "well-known\t-", "wellknown");
    CHECK_NORMALIZES(vqa_normalize_prediction, "well-known\n-", "wellknown");
    CHECK_NORMALIZES(vqa_normalize_prediction, "well-known", "well known");
    CHECK_NORMALIZES(vqa_normalize_prediction, "one, two", "1 2");
    CHECK_NORMALIZES(vqa_normalize_prediction, "why?!", "why");
    CHECK_NORMALIZES(vqa_normalize_prediction, "The.", "");
    CHECK_NORMALIZES(vqa_normalize_prediction, "", "");
    CHECK_NORMALIZES(vqa_normalize_prediction, " \n\t ", "");
}

/* |got − want| < 1e-12 */
static void check_accuracy(const char *prediction, const char *const *answers, size_t count, double want, int line) {
    double got = vqa_accuracy(prediction, answers, count);
    bool ok = fabs(got - want) < 1e-12;
    if (!ok) fprintf(stderr, "    line %d: vqa_accuracy(\"%s\") = %.17g, want %.17g\n", line, prediction, got, want);
    test_check(ok, "vqa_accuracy", __FILE__, line);
}
#define CHECK_ACCURACY(prediction, answers, want) check_accuracy(prediction, answers, sizeof answers / sizeof answers[0], want, __LINE__)

static void test_accuracy(void) {
    /* every leave-one-out subset of 9 answers has min(1, matches / 3) */
    static const char *const ten_two[] = {"2", "2", "2", "2", "2", "2", "2", "2", "2", "2"};
    CHECK_ACCURACY("2", ten_two, 1.0);
    CHECK_ACCURACY("Two.", ten_two, 1.0); /* the prediction is normalised */
    CHECK_ACCURACY("3", ten_two, 0.0);

    /* 4 matches: the others always see >= 3 → 1 */
    static const char *const four[] = {"2", "2", "2", "2", "3", "3", "3", "3", "3", "3"};
    CHECK_ACCURACY("2", four, 1.0);
    /* 3 matches: 3 leave-outs see 2 (2/3), 7 see 3 (1): (3·2/3 + 7)/10 = 0.9 */
    static const char *const three[] = {"2", "3", "2", "3", "3", "2", "3", "3", "3", "3"};
    CHECK_ACCURACY("2", three, 0.9);
    /* and the other answer, 7 matches: 1 */
    CHECK_ACCURACY("3", three, 1.0);
    /* 2 matches: (2·1/3 + 8·2/3)/10 = 0.6 */
    static const char *const two[] = {"red", "blue", "blue", "blue", "red", "blue", "blue", "blue", "blue", "blue"};
    CHECK_ACCURACY("red", two, 0.6);
    /* 1 match: (1·0 + 9·1/3)/10 = 0.3 */
    static const char *const one[] = {"red", "blue", "blue", "blue", "blue", "blue", "blue", "blue", "blue", "blue"};
    CHECK_ACCURACY("Red", one, 0.3);
    CHECK_ACCURACY("green", one, 0.0);

    /* answers that are not all equal are punctuation-processed (only): "yes!" → "yes " does not
     * match "yes", so "yes" has 2 matches → 0.6 */
    static const char *const exclaimed[] = {"yes", "yes", "no", "no", "no", "no", "no", "no", "no", "yes!"};
    CHECK_ACCURACY("yes", exclaimed, 0.6);
    CHECK_ACCURACY("No!", exclaimed, 1.0);
    /* "1,000" → "1000" in both; "black and white." → "black and white" */
    static const char *const numbers[] = {"1,000", "1000", "1,000", "100", "100", "100", "100", "100", "100", "100"};
    CHECK_ACCURACY("1,000", numbers, 0.9);
    static const char *const colours[] = {"black and white.", "black and white", "white", "white", "white",
                                          "white", "white", "white", "white", "white"};
    CHECK_ACCURACY("Black and white", colours, 0.6);
    /* answers are not digit/article-processed: "two" and "a dog" never match a normalised
     * prediction ("2", "dog") */
    static const char *const words[] = {"two", "two", "two", "two", "2", "2", "2", "two", "two", "two"};
    CHECK_ACCURACY("two", words, 0.9);
    static const char *const dogs[] = {"a dog", "a dog", "dog", "dog", "a dog", "a dog", "a dog", "a dog", "a dog", "a dog"};
    CHECK_ACCURACY("a dog", dogs, 0.6);
    /* all equal: kept raw, so "yes." never matches anything */
    static const char *const dotted[] = {"yes.", "yes.", "yes.", "yes.", "yes.", "yes.", "yes.", "yes.", "yes.", "yes."};
    CHECK_ACCURACY("yes.", dotted, 0.0);
    static const char *const two_words[] = {"two", "two", "two", "two", "two", "two", "two", "two", "two", "two"};
    CHECK_ACCURACY("two", two_words, 0.0);

    /* other answer counts: 3 answers all "yes": each leave-one-out sees 2 → 2/3 */
    static const char *const three_yes[] = {"yes", "yes", "yes"};
    CHECK_ACCURACY("yes", three_yes, 2.0 / 3.0);
    static const char *const single[] = {"yes"};
    CHECK_ACCURACY("yes", single, 0.0);
}

void suite_metrics(void) {
    RUN(test_process_punctuation);
    RUN(test_process_digit_article);
    RUN(test_normalize_prediction);
    RUN(test_accuracy);
}
