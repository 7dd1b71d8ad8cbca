/// What a function parameter is to the program that runs it.
public enum Role: String, Sendable, CaseIterable, Hashable {
    /// Data fed per call (token ids, features, labels, dropout seed).
    case input
    /// A weight that is read but never trained: no gradient, no optimizer state.
    case frozen
    /// A weight that autodiff differentiates and the optimizer updates.
    case trainable
    /// Mutable program state (optimizer moments, step counter), carried between calls.
    case state
}
